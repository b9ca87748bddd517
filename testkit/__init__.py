"""Helpers shared by the tests and the bench: loopback processes they start and stop.

Neither a test package nor part of the application (not installed with it): tests/ and
bench/ both import it, and neither imports the other.
"""
