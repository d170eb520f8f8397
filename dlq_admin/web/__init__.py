"""The thin FastAPI layer over ``dlq_admin.service``."""

from dlq_admin.web.app import create_app

__all__ = ["create_app"]
