"""HTTP adapter (FastAPI) over ``certstore.services``: routers, request/response models, auth, web pages.

No domain rules live here: routes authenticate, build the request's call (actor + origin, ``api.security``), call
one use case of ``certstore.services`` — which authorises, applies and audits — and shape its result. ``create_app()`` builds the application (``certstore serve`` runs it under uvicorn).
"""

from api.app import Services, create_app

__all__ = ["Services", "create_app"]
