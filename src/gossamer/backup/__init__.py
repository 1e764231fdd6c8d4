"""Backup, restore and rollback of a control plane's state (docs/backup.md)."""
