"""Drop the mutation run's test database before a run, so it starts from migrations.

The run keeps one test database between mutants (``--reuse-db``). A run stopped in the
middle of a transactional test leaves that test's rows behind, and the next run's first
tests then fail on them ("failed to collect stats"). Dropping it costs one migration.
"""

from __future__ import annotations

import os
import sys

import psycopg

NAME = os.environ.get("TEST_DATABASE_NAME", "test_pms_mutation")


def main() -> int:
    url = os.environ.get("DATABASE_URL")
    if not url:
        print("mutation_fresh_db: DATABASE_URL is not set (run it under devstack exec)")
        return 1
    try:
        with psycopg.connect(url, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{NAME}" WITH (FORCE)')
    except psycopg.Error as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"mutation_fresh_db: could not drop {NAME}: {reason}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
