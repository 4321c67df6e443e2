"""accord's wire protocol (``accord.proto``) and the modules protoc generated from it.

Only :mod:`accord.transport` imports them; domain code sees the types of
:mod:`accord.transport.messages`, converted by :mod:`accord.transport.codec`.
"""
