"""The planner told that a person has a list's worth of cached rows (PostgreSQL only).

ANALYZE samples whole pages, and a person's 50 cached rows sit on the same one or two, so
on a large cache its sample repeats the same people and it guesses few distinct people
with many rows each (38,614 people for a million, 1,300 rows each, at 50 million rows).
A refresh block's delete of 1,000 people's lists then looked like 1.3 million rows and
was planned as a scan of the whole table: 7 s a block instead of 0.1 s (issue 21 item
2), depending on which sample the last ANALYZE happened to draw. ``n_distinct = -0.02``
says one distinct person in 50 rows whatever the table's size (a list of 50, the default
top_n; two kinds or shorter lists stay within a few times of it, where the index still
wins); ANALYZE keeps it from then on.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04 16:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: One distinct person a list of rows (negative: a fraction of the rows, as the table grows).
ROWS_PER_PERSON = 50


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return  # SQLite plans a primary-key lookup for the delete without statistics
    op.execute(f"ALTER TABLE recommendations ALTER COLUMN user_id "
               f"SET (n_distinct = {-1 / ROWS_PER_PERSON})")  # fmt: skip
    op.execute("ANALYZE recommendations")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("ALTER TABLE recommendations ALTER COLUMN user_id RESET (n_distinct)")
    op.execute("ANALYZE recommendations")
