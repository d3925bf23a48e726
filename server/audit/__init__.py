"""The tamper-evident audit chain: append-only JSONL, one record per line.

Each record carries `seq` (0-based), `time` (ISO UTC from the clock adapter), `prev` (the previous
record's hash, 64 zeros for the first) and `hash`: SHA-256 over the canonical JSON (sorted keys,
compact separators, ASCII, no NaN) of the record without `hash`. Lines are stored byte-exact in
that canonical form, so any edit of a byte shows.

Durability. Each record is written with one `write` on an O_APPEND descriptor (it reaches the
kernel at once); `fsync` is batched: after `fsync_every` records or `fsync_interval_ms` after the
first unsynced one (configs/policy.yaml `audit:`), and on `sync()` / `close()`. After each fsync
the head (seq, hash, byte offset) is anchored atomically in the sibling `audit.head` (for
`audit.jsonl`; temp file, fsync, rename, fsync of the directory). The anchor never runs ahead of durable data,
so a truncation of anchored records is always detectable; records after the last anchor are
protected by their links only.

Single writer. An exclusive `flock` on the sibling `audit.lock` is held for every append and
sync, not for the life of the chain: a server and a CLI command (or two server processes) can
share one workspace, yet at any instant exactly one of them writes. Under the lock the writer
first reads records another process appended since its last write and checks that they extend
its head, so the chain can never fork. A lock held longer than `lock_timeout_ms` is refused.

Torn tail. A crash mid-write can leave a last line without its newline. Opening a chain never
silently continues after one: when the torn bytes lie after the anchored head (what a crash can
produce) they are moved to `audit.torn-<seq>-<sha12>`, the chain file is cut back to its last
complete record, and a `kind: recovered_torn_tail` record with the side file's name, size and
SHA-256 is chained, so the evidence is kept and the recovery itself is audited. Torn or missing
bytes inside the anchored part are tampering: opening refuses with an IntegrityError.

Outside the state directory. A chain rewritten whole (records dropped, re-linked, re-hashed, the
anchor rewritten) is consistent in itself; two things give it away (server/audit/witness.py,
signing.py, crosscheck.py): witnesses, the head (seq, hash) the server saw, recorded on every MLflow
run, PR record and alias event; and, with a signing key, Ed25519 signed heads in the anchor and in
`audit.checkpoints`, checked against the public key the chain announces and the one pinned beside
the private key. `mlgate audit verify` checks the chain, then all of these.

Records never carry raw secrets (the enforcement point sends hashes and ids); the chain rejects
values that are not plain JSON (str keys, str/int/float/bool/None, lists, mappings; finite floats),
and credentials in any URI a record holds are redacted before it is written (tools/redact.py).
"""

from server.audit.chain import AuditChain
from server.audit.records import GENESIS_HASH, AuditOptions, Head, canonical, read_anchor, read_tail, record_hash
from server.audit.verify import Problem, VerifyReport, verify

__all__ = [
    "GENESIS_HASH",
    "AuditChain",
    "AuditOptions",
    "Head",
    "Problem",
    "VerifyReport",
    "canonical",
    "read_anchor",
    "read_tail",
    "record_hash",
    "verify",
]
