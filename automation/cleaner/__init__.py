"""The cleaner's pages: today's tasks on a phone, start and done, notes, a problem's photo."""
