"""The guest's pages behind the emailed link: the booking, its money, changes, messages."""
