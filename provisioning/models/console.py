"""Console sign-ins: a session cookie stands for an admin key in the browser, so the key
itself never sits in a cookie, a URL or browser storage."""

from sqlmodel import Field, SQLModel


class ConsoleSession(SQLModel, table=True):
    __tablename__ = "console_sessions"

    id_hash: str = Field(primary_key=True, max_length=64)  # SHA-256 hex of the cookie value
    admin_key_id: str = Field(foreign_key="admin_keys.id", index=True, max_length=32)
    csrf_token: str = Field(max_length=64)  # sent back with every state-changing request
    created_at: int
    seen_at: int  # last request, to the minute: the idle timeout counts from it
    expires_at: int  # absolute end, whatever the activity
