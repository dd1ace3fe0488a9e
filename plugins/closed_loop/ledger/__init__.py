"""The ledger: the project's own record of what it synced, sent, received, opened and escalated."""

from .ledger import Ledger
from .models import Base

__all__ = ["Base", "Ledger"]
