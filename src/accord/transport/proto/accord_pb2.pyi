from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class JobKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    JOB_KIND_UNSPECIFIED: _ClassVar[JobKind]
    JOB_KIND_TRAIN: _ClassVar[JobKind]
    JOB_KIND_EVAL: _ClassVar[JobKind]
    JOB_KIND_SECAGG: _ClassVar[JobKind]
JOB_KIND_UNSPECIFIED: JobKind
JOB_KIND_TRAIN: JobKind
JOB_KIND_EVAL: JobKind
JOB_KIND_SECAGG: JobKind

class Hello(_message.Message):
    __slots__ = ("protocol", "software", "identity_certificate")
    PROTOCOL_FIELD_NUMBER: _ClassVar[int]
    SOFTWARE_FIELD_NUMBER: _ClassVar[int]
    IDENTITY_CERTIFICATE_FIELD_NUMBER: _ClassVar[int]
    protocol: int
    software: str
    identity_certificate: bytes
    def __init__(self, protocol: _Optional[int] = ..., software: _Optional[str] = ..., identity_certificate: _Optional[bytes] = ...) -> None: ...

class Task(_message.Message):
    __slots__ = ("run_id", "round", "kind", "model_digest", "config_json", "goodbye", "secure_json", "secagg_stage", "secagg", "identity_certificates", "crl", "ledger_entry")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    ROUND_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    MODEL_DIGEST_FIELD_NUMBER: _ClassVar[int]
    CONFIG_JSON_FIELD_NUMBER: _ClassVar[int]
    GOODBYE_FIELD_NUMBER: _ClassVar[int]
    SECURE_JSON_FIELD_NUMBER: _ClassVar[int]
    SECAGG_STAGE_FIELD_NUMBER: _ClassVar[int]
    SECAGG_FIELD_NUMBER: _ClassVar[int]
    IDENTITY_CERTIFICATES_FIELD_NUMBER: _ClassVar[int]
    CRL_FIELD_NUMBER: _ClassVar[int]
    LEDGER_ENTRY_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    round: int
    kind: JobKind
    model_digest: str
    config_json: str
    goodbye: str
    secure_json: str
    secagg_stage: str
    secagg: bytes
    identity_certificates: _containers.RepeatedScalarFieldContainer[bytes]
    crl: bytes
    ledger_entry: str
    def __init__(self, run_id: _Optional[str] = ..., round: _Optional[int] = ..., kind: _Optional[_Union[JobKind, str]] = ..., model_digest: _Optional[str] = ..., config_json: _Optional[str] = ..., goodbye: _Optional[str] = ..., secure_json: _Optional[str] = ..., secagg_stage: _Optional[str] = ..., secagg: _Optional[bytes] = ..., identity_certificates: _Optional[_Iterable[bytes]] = ..., crl: _Optional[bytes] = ..., ledger_entry: _Optional[str] = ...) -> None: ...

class ModelRequest(_message.Message):
    __slots__ = ("run_id", "digest")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    digest: str
    def __init__(self, run_id: _Optional[str] = ..., digest: _Optional[str] = ...) -> None: ...

class TensorHeader(_message.Message):
    __slots__ = ("name", "dtype", "shape")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    name: str
    dtype: str
    shape: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, name: _Optional[str] = ..., dtype: _Optional[str] = ..., shape: _Optional[_Iterable[int]] = ...) -> None: ...

class PackedHeader(_message.Message):
    __slots__ = ("tensors", "total_bytes", "digest")
    TENSORS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_BYTES_FIELD_NUMBER: _ClassVar[int]
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    tensors: _containers.RepeatedCompositeFieldContainer[TensorHeader]
    total_bytes: int
    digest: str
    def __init__(self, tensors: _Optional[_Iterable[_Union[TensorHeader, _Mapping]]] = ..., total_bytes: _Optional[int] = ..., digest: _Optional[str] = ...) -> None: ...

class Chunk(_message.Message):
    __slots__ = ("offset", "data")
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    offset: int
    data: bytes
    def __init__(self, offset: _Optional[int] = ..., data: _Optional[bytes] = ...) -> None: ...

class ModelPart(_message.Message):
    __slots__ = ("header", "chunk")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    header: PackedHeader
    chunk: Chunk
    def __init__(self, header: _Optional[_Union[PackedHeader, _Mapping]] = ..., chunk: _Optional[_Union[Chunk, _Mapping]] = ...) -> None: ...

class UpdateHeader(_message.Message):
    __slots__ = ("run_id", "round", "base_digest", "params", "num_examples", "duration_s", "metrics", "receipt")
    class MetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    ROUND_FIELD_NUMBER: _ClassVar[int]
    BASE_DIGEST_FIELD_NUMBER: _ClassVar[int]
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    NUM_EXAMPLES_FIELD_NUMBER: _ClassVar[int]
    DURATION_S_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    RECEIPT_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    round: int
    base_digest: str
    params: PackedHeader
    num_examples: int
    duration_s: float
    metrics: _containers.ScalarMap[str, float]
    receipt: str
    def __init__(self, run_id: _Optional[str] = ..., round: _Optional[int] = ..., base_digest: _Optional[str] = ..., params: _Optional[_Union[PackedHeader, _Mapping]] = ..., num_examples: _Optional[int] = ..., duration_s: _Optional[float] = ..., metrics: _Optional[_Mapping[str, float]] = ..., receipt: _Optional[str] = ...) -> None: ...

class UpdatePart(_message.Message):
    __slots__ = ("header", "chunk")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    header: UpdateHeader
    chunk: Chunk
    def __init__(self, header: _Optional[_Union[UpdateHeader, _Mapping]] = ..., chunk: _Optional[_Union[Chunk, _Mapping]] = ...) -> None: ...

class EvalReport(_message.Message):
    __slots__ = ("run_id", "round", "model_digest", "metrics", "num_examples", "duration_s")
    class MetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    ROUND_FIELD_NUMBER: _ClassVar[int]
    MODEL_DIGEST_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    NUM_EXAMPLES_FIELD_NUMBER: _ClassVar[int]
    DURATION_S_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    round: int
    model_digest: str
    metrics: _containers.ScalarMap[str, float]
    num_examples: int
    duration_s: float
    def __init__(self, run_id: _Optional[str] = ..., round: _Optional[int] = ..., model_digest: _Optional[str] = ..., metrics: _Optional[_Mapping[str, float]] = ..., num_examples: _Optional[int] = ..., duration_s: _Optional[float] = ...) -> None: ...

class FailureReport(_message.Message):
    __slots__ = ("run_id", "round", "kind", "refused", "reason", "duration_s")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    ROUND_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    REFUSED_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    DURATION_S_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    round: int
    kind: JobKind
    refused: bool
    reason: str
    duration_s: float
    def __init__(self, run_id: _Optional[str] = ..., round: _Optional[int] = ..., kind: _Optional[_Union[JobKind, str]] = ..., refused: _Optional[bool] = ..., reason: _Optional[str] = ..., duration_s: _Optional[float] = ...) -> None: ...

class Receipt(_message.Message):
    __slots__ = ("run_id", "round", "participant", "digest", "bytes")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    ROUND_FIELD_NUMBER: _ClassVar[int]
    PARTICIPANT_FIELD_NUMBER: _ClassVar[int]
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    BYTES_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    round: int
    participant: str
    digest: str
    bytes: int
    def __init__(self, run_id: _Optional[str] = ..., round: _Optional[int] = ..., participant: _Optional[str] = ..., digest: _Optional[str] = ..., bytes: _Optional[int] = ...) -> None: ...

class StatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ParticipantStatus(_message.Message):
    __slots__ = ("name", "connected", "last_round")
    NAME_FIELD_NUMBER: _ClassVar[int]
    CONNECTED_FIELD_NUMBER: _ClassVar[int]
    LAST_ROUND_FIELD_NUMBER: _ClassVar[int]
    name: str
    connected: bool
    last_round: int
    def __init__(self, name: _Optional[str] = ..., connected: _Optional[bool] = ..., last_round: _Optional[int] = ...) -> None: ...

class StatusReply(_message.Message):
    __slots__ = ("run_id", "round", "participants", "rejections", "stopping")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    ROUND_FIELD_NUMBER: _ClassVar[int]
    PARTICIPANTS_FIELD_NUMBER: _ClassVar[int]
    REJECTIONS_FIELD_NUMBER: _ClassVar[int]
    STOPPING_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    round: int
    participants: _containers.RepeatedCompositeFieldContainer[ParticipantStatus]
    rejections: int
    stopping: bool
    def __init__(self, run_id: _Optional[str] = ..., round: _Optional[int] = ..., participants: _Optional[_Iterable[_Union[ParticipantStatus, _Mapping]]] = ..., rejections: _Optional[int] = ..., stopping: _Optional[bool] = ...) -> None: ...

class StopRequest(_message.Message):
    __slots__ = ("reason",)
    REASON_FIELD_NUMBER: _ClassVar[int]
    reason: str
    def __init__(self, reason: _Optional[str] = ...) -> None: ...

class StopReply(_message.Message):
    __slots__ = ("accepted",)
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    accepted: bool
    def __init__(self, accepted: _Optional[bool] = ...) -> None: ...

class SecAggAdvertise(_message.Message):
    __slots__ = ("run_id", "round", "sender", "encryption_key", "masking_key", "seed_commitment", "signature")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    ROUND_FIELD_NUMBER: _ClassVar[int]
    SENDER_FIELD_NUMBER: _ClassVar[int]
    ENCRYPTION_KEY_FIELD_NUMBER: _ClassVar[int]
    MASKING_KEY_FIELD_NUMBER: _ClassVar[int]
    SEED_COMMITMENT_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    round: int
    sender: str
    encryption_key: bytes
    masking_key: bytes
    seed_commitment: bytes
    signature: bytes
    def __init__(self, run_id: _Optional[str] = ..., round: _Optional[int] = ..., sender: _Optional[str] = ..., encryption_key: _Optional[bytes] = ..., masking_key: _Optional[bytes] = ..., seed_commitment: _Optional[bytes] = ..., signature: _Optional[bytes] = ...) -> None: ...

class SecAggEncryptedShares(_message.Message):
    __slots__ = ("dealer", "holder", "ciphertext")
    DEALER_FIELD_NUMBER: _ClassVar[int]
    HOLDER_FIELD_NUMBER: _ClassVar[int]
    CIPHERTEXT_FIELD_NUMBER: _ClassVar[int]
    dealer: str
    holder: str
    ciphertext: bytes
    def __init__(self, dealer: _Optional[str] = ..., holder: _Optional[str] = ..., ciphertext: _Optional[bytes] = ...) -> None: ...

class SecAggDealing(_message.Message):
    __slots__ = ("dealer", "commitments", "signature")
    DEALER_FIELD_NUMBER: _ClassVar[int]
    COMMITMENTS_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    dealer: str
    commitments: bytes
    signature: bytes
    def __init__(self, dealer: _Optional[str] = ..., commitments: _Optional[bytes] = ..., signature: _Optional[bytes] = ...) -> None: ...

class SecAggShareKeys(_message.Message):
    __slots__ = ("run_id", "round", "sender", "shares", "dealing")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    ROUND_FIELD_NUMBER: _ClassVar[int]
    SENDER_FIELD_NUMBER: _ClassVar[int]
    SHARES_FIELD_NUMBER: _ClassVar[int]
    DEALING_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    round: int
    sender: str
    shares: _containers.RepeatedCompositeFieldContainer[SecAggEncryptedShares]
    dealing: SecAggDealing
    def __init__(self, run_id: _Optional[str] = ..., round: _Optional[int] = ..., sender: _Optional[str] = ..., shares: _Optional[_Iterable[_Union[SecAggEncryptedShares, _Mapping]]] = ..., dealing: _Optional[_Union[SecAggDealing, _Mapping]] = ...) -> None: ...

class SecAggMaskedInput(_message.Message):
    __slots__ = ("run_id", "round", "sender", "vector")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    ROUND_FIELD_NUMBER: _ClassVar[int]
    SENDER_FIELD_NUMBER: _ClassVar[int]
    VECTOR_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    round: int
    sender: str
    vector: bytes
    def __init__(self, run_id: _Optional[str] = ..., round: _Optional[int] = ..., sender: _Optional[str] = ..., vector: _Optional[bytes] = ...) -> None: ...

class SecAggConsistency(_message.Message):
    __slots__ = ("run_id", "round", "sender", "signature")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    ROUND_FIELD_NUMBER: _ClassVar[int]
    SENDER_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    round: int
    sender: str
    signature: bytes
    def __init__(self, run_id: _Optional[str] = ..., round: _Optional[int] = ..., sender: _Optional[str] = ..., signature: _Optional[bytes] = ...) -> None: ...

class SecAggRevealedShare(_message.Message):
    __slots__ = ("dealer", "kind", "index", "value", "salt")
    DEALER_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    SALT_FIELD_NUMBER: _ClassVar[int]
    dealer: str
    kind: str
    index: int
    value: bytes
    salt: bytes
    def __init__(self, dealer: _Optional[str] = ..., kind: _Optional[str] = ..., index: _Optional[int] = ..., value: _Optional[bytes] = ..., salt: _Optional[bytes] = ...) -> None: ...

class SecAggUnmask(_message.Message):
    __slots__ = ("run_id", "round", "sender", "shares")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    ROUND_FIELD_NUMBER: _ClassVar[int]
    SENDER_FIELD_NUMBER: _ClassVar[int]
    SHARES_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    round: int
    sender: str
    shares: _containers.RepeatedCompositeFieldContainer[SecAggRevealedShare]
    def __init__(self, run_id: _Optional[str] = ..., round: _Optional[int] = ..., sender: _Optional[str] = ..., shares: _Optional[_Iterable[_Union[SecAggRevealedShare, _Mapping]]] = ...) -> None: ...

class SecAggKeyDirectory(_message.Message):
    __slots__ = ("run_id", "round", "keys")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    ROUND_FIELD_NUMBER: _ClassVar[int]
    KEYS_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    round: int
    keys: _containers.RepeatedCompositeFieldContainer[SecAggAdvertise]
    def __init__(self, run_id: _Optional[str] = ..., round: _Optional[int] = ..., keys: _Optional[_Iterable[_Union[SecAggAdvertise, _Mapping]]] = ...) -> None: ...

class SecAggSharesDelivery(_message.Message):
    __slots__ = ("run_id", "round", "recipient", "shares", "dealings")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    ROUND_FIELD_NUMBER: _ClassVar[int]
    RECIPIENT_FIELD_NUMBER: _ClassVar[int]
    SHARES_FIELD_NUMBER: _ClassVar[int]
    DEALINGS_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    round: int
    recipient: str
    shares: _containers.RepeatedCompositeFieldContainer[SecAggEncryptedShares]
    dealings: _containers.RepeatedCompositeFieldContainer[SecAggDealing]
    def __init__(self, run_id: _Optional[str] = ..., round: _Optional[int] = ..., recipient: _Optional[str] = ..., shares: _Optional[_Iterable[_Union[SecAggEncryptedShares, _Mapping]]] = ..., dealings: _Optional[_Iterable[_Union[SecAggDealing, _Mapping]]] = ...) -> None: ...

class SecAggSurvivorList(_message.Message):
    __slots__ = ("run_id", "round", "survivors")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    ROUND_FIELD_NUMBER: _ClassVar[int]
    SURVIVORS_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    round: int
    survivors: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, run_id: _Optional[str] = ..., round: _Optional[int] = ..., survivors: _Optional[_Iterable[str]] = ...) -> None: ...

class SecAggSurvivorSignatures(_message.Message):
    __slots__ = ("run_id", "round", "survivors", "signatures")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    ROUND_FIELD_NUMBER: _ClassVar[int]
    SURVIVORS_FIELD_NUMBER: _ClassVar[int]
    SIGNATURES_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    round: int
    survivors: _containers.RepeatedScalarFieldContainer[str]
    signatures: _containers.RepeatedCompositeFieldContainer[SecAggConsistency]
    def __init__(self, run_id: _Optional[str] = ..., round: _Optional[int] = ..., survivors: _Optional[_Iterable[str]] = ..., signatures: _Optional[_Iterable[_Union[SecAggConsistency, _Mapping]]] = ...) -> None: ...

class SecAggMessage(_message.Message):
    __slots__ = ("advertise", "share_keys", "masked_input", "consistency", "unmask", "key_directory", "shares_delivery", "survivor_list", "survivor_signatures")
    ADVERTISE_FIELD_NUMBER: _ClassVar[int]
    SHARE_KEYS_FIELD_NUMBER: _ClassVar[int]
    MASKED_INPUT_FIELD_NUMBER: _ClassVar[int]
    CONSISTENCY_FIELD_NUMBER: _ClassVar[int]
    UNMASK_FIELD_NUMBER: _ClassVar[int]
    KEY_DIRECTORY_FIELD_NUMBER: _ClassVar[int]
    SHARES_DELIVERY_FIELD_NUMBER: _ClassVar[int]
    SURVIVOR_LIST_FIELD_NUMBER: _ClassVar[int]
    SURVIVOR_SIGNATURES_FIELD_NUMBER: _ClassVar[int]
    advertise: SecAggAdvertise
    share_keys: SecAggShareKeys
    masked_input: SecAggMaskedInput
    consistency: SecAggConsistency
    unmask: SecAggUnmask
    key_directory: SecAggKeyDirectory
    shares_delivery: SecAggSharesDelivery
    survivor_list: SecAggSurvivorList
    survivor_signatures: SecAggSurvivorSignatures
    def __init__(self, advertise: _Optional[_Union[SecAggAdvertise, _Mapping]] = ..., share_keys: _Optional[_Union[SecAggShareKeys, _Mapping]] = ..., masked_input: _Optional[_Union[SecAggMaskedInput, _Mapping]] = ..., consistency: _Optional[_Union[SecAggConsistency, _Mapping]] = ..., unmask: _Optional[_Union[SecAggUnmask, _Mapping]] = ..., key_directory: _Optional[_Union[SecAggKeyDirectory, _Mapping]] = ..., shares_delivery: _Optional[_Union[SecAggSharesDelivery, _Mapping]] = ..., survivor_list: _Optional[_Union[SecAggSurvivorList, _Mapping]] = ..., survivor_signatures: _Optional[_Union[SecAggSurvivorSignatures, _Mapping]] = ...) -> None: ...

class SecAggHeader(_message.Message):
    __slots__ = ("run_id", "round", "stage", "total_bytes", "duration_s", "answers")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    ROUND_FIELD_NUMBER: _ClassVar[int]
    STAGE_FIELD_NUMBER: _ClassVar[int]
    TOTAL_BYTES_FIELD_NUMBER: _ClassVar[int]
    DURATION_S_FIELD_NUMBER: _ClassVar[int]
    ANSWERS_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    round: int
    stage: str
    total_bytes: int
    duration_s: float
    answers: str
    def __init__(self, run_id: _Optional[str] = ..., round: _Optional[int] = ..., stage: _Optional[str] = ..., total_bytes: _Optional[int] = ..., duration_s: _Optional[float] = ..., answers: _Optional[str] = ...) -> None: ...

class SecAggPart(_message.Message):
    __slots__ = ("header", "chunk")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    header: SecAggHeader
    chunk: Chunk
    def __init__(self, header: _Optional[_Union[SecAggHeader, _Mapping]] = ..., chunk: _Optional[_Union[Chunk, _Mapping]] = ...) -> None: ...
