"""HTTP adapter (FastAPI) over ``certstore.services``: routers, request/response models, auth, web pages.

No domain rules live here. The service layer arrives with the generation/management/sharing/verification
interfaces; until then the command line is the interface.
"""
