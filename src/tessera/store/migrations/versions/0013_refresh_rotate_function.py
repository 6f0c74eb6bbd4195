"""PostgreSQL: tessera_rotate_refresh, a refresh rotation's writes in one call

One round trip instead of a dozen (store/sql/rotations.py): iff the token is not rotated
and its family and session are not revoked, mark it rotated, insert the successor, touch
the session, record the risk observation (when given) and append the audit row to the
hash chain — under the advisory lock ``SqlAuditRepo.append`` takes, reading the head in
a statement of its own (a fresh snapshot, taken after the lock) and linking as
``core.audit_chain.chain_link`` does: SHA-256 of the previous link's ASCII followed by
the record's canonical bytes (computed by the caller). Returns whether it rotated.
Nothing on SQLite.

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

_SIGNATURE = """tessera_rotate_refresh(
    p_token_hash text, p_successor_hash text, p_family_id text, p_generation integer,
    p_issued_at double precision, p_expires_at double precision, p_access_jti text,
    p_sid text, p_at double precision, p_event text, p_audit_at double precision,
    p_fields json, p_payload bytea, p_obs_kind text, p_obs_tenant text, p_obs_user text,
    p_obs_address text, p_obs_agent text)"""

_BODY = """
RETURNS boolean LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    head text;
BEGIN
    UPDATE refresh_tokens t SET rotated_at = p_at, successor_hash = p_successor_hash
     WHERE t.token_hash = p_token_hash AND t.rotated_at IS NULL
       AND EXISTS (SELECT 1 FROM refresh_families f
                    WHERE f.family_id = t.family_id AND f.revoked_at IS NULL)
       AND EXISTS (SELECT 1 FROM sessions s WHERE s.sid = p_sid AND s.revoked_at IS NULL);
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    INSERT INTO refresh_tokens (token_hash, family_id, generation, issued_at, expires_at,
                                access_jti)
    VALUES (p_successor_hash, p_family_id, p_generation, p_issued_at, p_expires_at,
            p_access_jti);
    UPDATE sessions SET last_seen_at = p_at WHERE sid = p_sid;
    IF p_obs_kind IS NOT NULL THEN
        INSERT INTO risk_observations (kind, at, tenant_id, user_id, family_id, address,
                                       user_agent)
        VALUES (p_obs_kind, p_at, p_obs_tenant, p_obs_user, p_family_id, p_obs_address,
                p_obs_agent);
    END IF;
    PERFORM pg_advisory_xact_lock(7362818);
    SELECT chain_hash INTO head FROM audit_events WHERE chain_hash IS NOT NULL
     ORDER BY id DESC LIMIT 1;
    INSERT INTO audit_events (event, at, fields, chain_hash)
    VALUES (p_event, p_audit_at, p_fields,
            encode(sha256(convert_to(coalesce(head, repeat('0', 64)), 'UTF8') || p_payload),
                   'hex'));
    RETURN true;
END
$$"""


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(f"CREATE OR REPLACE FUNCTION {_SIGNATURE}{_BODY}")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP FUNCTION IF EXISTS tessera_rotate_refresh(text, text, text, integer, "
               "double precision, double precision, text, text, double precision, text, "
               "double precision, json, bytea, text, text, text, text, text)")
