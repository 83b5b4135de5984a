"""The task store: tables, migrations, claims and leases, and the read-only queries ops
use. The only code that writes the database."""
