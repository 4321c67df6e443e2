"""Moving updates between sites and the coordinator, and deciding whom to trust.

The only package that imports grpc (in :mod:`~accord.transport.server`,
:mod:`~accord.transport.handlers`, :mod:`~accord.transport.client`,
:mod:`~accord.transport.security` and :mod:`~accord.transport.status`); it needs
the ``deploy`` extra.

Wire: ``proto/accord.proto`` and its generated modules; :mod:`.messages` (the
protocol's messages as plain dataclasses) and :mod:`.codec` (the converter between
them and protobuf, with :mod:`.secure_codec` for secure rounds); :mod:`.rpc` (the
method table).
Coordinator side: :mod:`.executor` (``GrpcExecutor``, the round loop's Executor),
:mod:`.jobs` (admission rules), :mod:`.links` (open task streams),
:mod:`.spool` (receiving an update to disk), :mod:`.rejections`, :mod:`.server`
and :mod:`.handlers`, behind :mod:`.gate` (:mod:`.admission`, :mod:`.watchdog`,
:mod:`.revocation`; uploads name themselves in :mod:`.call_metadata`).
Participant side: :mod:`.client`. Trust: :mod:`.pki` runs the federation's
certificate authority and a site's enrolment, :mod:`.roster` is the record of who
was issued what, :mod:`.trust` decides whether a peer's certificate belongs to the
federation, and :mod:`.security` applies it to every call. Secure rounds:
:mod:`.identity` (the sites' Ed25519 identity certificates, checked by the
coordinator and by every site) and :mod:`.secure_codec` (their wire form).
"""
