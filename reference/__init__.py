"""The executable specification of mmdiff and the vocabulary every layer shares.

Vocabulary (imported by impl/ and fuzz/): ``ops`` (Op dataclasses), ``results``
(Result, Errno, Signal), ``state`` (RawSnapshot, canonicalize), ``api`` (the
Machine contract). The model itself (``ReferenceMachine``) is the oracle; impl/
never imports it.
"""
