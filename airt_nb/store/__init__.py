"""Storage: the SQLite store (all SQL), its migrations, and the records it returns."""

from .records import ApprovalRecord, CompensationRecord, DeliveryRecord, StepRecord, WorkflowRecord
from .sqlite import LeaseLostError, SQLiteStore, Tx

__all__ = [
    "ApprovalRecord",
    "CompensationRecord",
    "DeliveryRecord",
    "LeaseLostError",
    "SQLiteStore",
    "StepRecord",
    "Tx",
    "WorkflowRecord",
]
