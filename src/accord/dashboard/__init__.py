"""``accord dashboard``: a read-only web view of a store's runs, live while they run.

:mod:`accord.dashboard.views` turns stored records into what a page shows (pure
functions, reusing the model card of :mod:`accord.report`);
:mod:`accord.dashboard.app` serves them with FastAPI (GET only, a strict
Content-Security-Policy, plotly.js served from the installed ``plotly`` package);
:mod:`accord.dashboard.server` runs it under uvicorn, on loopback, or elsewhere only
behind mutual TLS with an admin or auditor certificate of the federation's CA.
Needs the ``dashboard`` extra (and ``report`` for the plots).
"""
