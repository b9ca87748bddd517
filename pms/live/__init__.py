"""Live pages: the admin pages people keep open update without a reload.

How it fits together (README "Live pages")::

    a service or handler commits  ->  pms.pipeline.announce: a change notice on Redis pub/sub
    the live server (config.asgi, the Procfile's `live`)  ->  hub: one subscription per process
    hub  ->  the page groups the notice concerns (pages): re-rendered once per group (render)
    consumer  ->  the group's regions, to each open copy of the page (static pms/live.js)

A group is every open copy of one page (path and query) seen with the same rights
(access): one render serves them all, so the cost follows the pages, not the viewers.
"""
