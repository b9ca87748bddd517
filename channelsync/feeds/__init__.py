"""Channel feeds on the wire: the guarded fetch, iCal parse and export, the rate limit.

Model-free except ``export`` (which reads bookings and blocks to build a feed);
nothing here writes: the services do.
"""
