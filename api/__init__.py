"""HTTP adapter (FastAPI) over ``certstore.services``: routers, request/response models, auth, web pages.

No domain rules live here: routes authenticate, apply the access rules (``api.scope``), call one service function
and shape its result. ``create_app()`` builds the application (``certstore serve`` runs it under uvicorn).
"""

from api.app import Services, create_app

__all__ = ["Services", "create_app"]
