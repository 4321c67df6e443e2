"""Moving updates between sites and the coordinator, and deciding whom to trust.

The PKI needs the ``deploy`` extra (``cryptography``) and imports no grpc:
:mod:`accord.transport.pki` runs the federation's certificate authority and a site's
enrolment (keys, CSRs, certificates), :mod:`accord.transport.roster` is the record
of who was issued what, and :mod:`accord.transport.trust` decides whether a peer's
certificate belongs to the federation.
"""
