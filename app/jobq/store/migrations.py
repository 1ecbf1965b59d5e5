"""Schema migrations, applied with yoyo from migrations/<dialect>/ (one folder per dialect)."""

from __future__ import annotations

from pathlib import Path

from yoyo import get_backend, read_migrations

# app/jobq/store/migrations.py -> the repository root holds migrations/.
_REPO_MIGRATIONS = Path(__file__).resolve().parents[3] / "migrations"


def migrations_dir(dialect: str, root: Path | None = None) -> Path:
    folder = (root or _REPO_MIGRATIONS) / dialect
    if not folder.is_dir():
        raise FileNotFoundError(
            f"no {dialect} migrations in {folder}; set JQ_MIGRATIONS_DIR to the migrations/ folder"
        )
    return folder


def apply_migrations(url: str, folder: Path) -> None:
    backend = get_backend(url)
    try:
        migrations = read_migrations(str(folder))
        with backend.lock():
            backend.apply_migrations(backend.to_apply(migrations))
    finally:
        backend.connection.close()


def pending_migrations(url: str, folder: Path) -> int:
    backend = get_backend(url)
    try:
        return len(backend.to_apply(read_migrations(str(folder))))
    finally:
        backend.connection.close()
