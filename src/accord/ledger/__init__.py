"""Hash-chained, signed records of each run, and their verification.

A run's ledger is a chain of in-toto Statements in DSSE envelopes
(:mod:`~accord.ledger.statement`, :mod:`~accord.ledger.dsse`): the run opened (its
configuration, code, roster and signer), each round (who was selected, each site's
outcome and update digest, the aggregate's and the new model's digests, privacy
spent), the run resumed, the run closed (its final model). The coordinator signs
each entry (:mod:`~accord.ledger.writer`); sites countersign the round entries about
their own contribution (:mod:`~accord.ledger.receipt`). An export
(:mod:`~accord.ledger.export`) is checked offline with only the federation's CA
certificate (:mod:`~accord.ledger.verify`).

Pure: no gRPC, SQL or CLI; it needs ``cryptography`` (the ``deploy`` extra, which
every install of accord's CLI has).
"""
