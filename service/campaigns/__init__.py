"""Closed-loop campaigns at the service edge: the durable store (``store``), measured-row validation
(``results``), the status report (``report``) and the one campaign service (``service``) the CLI and the
HTTP API both call. The pure core (acquisition, batch proposal, refit rows) lives in ``screening.campaign``
and ``models.campaign``; ``core`` is the only module here that talks to it."""
