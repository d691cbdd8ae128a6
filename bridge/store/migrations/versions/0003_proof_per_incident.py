"""Proof belongs to one incident; "done" is named out_of_service.

incidents.proof_id names the evidence accepted as the incident's fencing proof. Incidents
already past fencing take their first bound evidence, which is what proved them before.

Revision ID: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"


def upgrade():
    op.add_column("incidents", sa.Column("proof_id", sa.Integer))
    op.create_index("evidence_by_incident", "evidence", ["incident_id"])
    op.execute("UPDATE incidents SET state = 'out_of_service' WHERE state = 'done'")
    op.execute("UPDATE incidents SET proof_id = (SELECT min(e.id) FROM evidence e WHERE e.incident_id = incidents.id) "
               "WHERE state NOT IN ('suspected', 'fencing', 'cancelled')")


def downgrade():
    op.execute("UPDATE incidents SET state = 'done' WHERE state = 'out_of_service'")
    op.drop_index("evidence_by_incident", "evidence")
    with op.batch_alter_table("incidents") as batch:
        batch.drop_column("proof_id")
