"""Gorse's wire shapes (v0.5): PascalCase fields, timestamps as RFC 3339 text. Unknown
fields are ignored, as Gorse's Go decoder ignores them, so clients of older Gorse
versions (``Subscribe`` on users) still work."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)


class GorseUser(Lenient):
    UserId: str = Field(min_length=1)
    Labels: Any = None
    Comment: str = ""


class GorseUserPatch(Lenient):
    """``PATCH /api/user/{id}``: a field sent as null (or left out) stays as it is."""

    Labels: Any = None
    Comment: str | None = None


class GorseItem(Lenient):
    ItemId: str = Field(min_length=1)
    IsHidden: bool = False
    Categories: list[str] | None = None
    Timestamp: str = ""
    Labels: Any = None
    Comment: str = ""


class GorseItemPatch(Lenient):
    """``PATCH /api/item/{id}``: a field sent as null (or left out) stays as it is."""

    IsHidden: bool | None = None
    Categories: list[str] | None = None
    Timestamp: str | None = None
    Labels: Any = None
    Comment: str | None = None


class GorseFeedback(Lenient):
    FeedbackType: str = Field(min_length=1, max_length=32)
    UserId: str = Field(min_length=1)
    ItemId: str = Field(min_length=1)
    Value: float = 0.0
    Timestamp: str = ""
    Comment: str = ""


class Success(BaseModel):
    """What every successful write answers."""

    RowAffected: int


class Score(BaseModel):
    Id: str
    Score: float


class UserPage(BaseModel):
    Cursor: str
    Users: list[dict[str, Any]]


class ItemPage(BaseModel):
    Cursor: str
    Items: list[dict[str, Any]]


class FeedbackPage(BaseModel):
    Cursor: str
    Feedback: list[dict[str, Any]]
