"""The participant runtime: what runs at each site, next to the data.

``accord participant`` builds a :class:`~accord.participant.runtime.ParticipantRuntime`
that dials out to the coordinator, runs the tasks it receives against the site's
local data (:mod:`accord.participant.data`) and keeps a site log that the site's
operator can read (:mod:`accord.participant.sitelog`). Only updates leave the site,
or, in secure rounds (:mod:`accord.participant.secure`), only their masked form; the
site's :mod:`~accord.participant.policy` may refuse the rest.
"""
