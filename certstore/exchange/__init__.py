"""The exchange (数据交换): front-end database sync, arrival deadlines (第十一条), upward aggregation.

- :mod:`certstore.exchange.frontend` — the front-end database contract (数据库前置机): tables, ``init_frontend``,
  ``FrontendWriter`` for agencies' scripts, receipts (回执).
- :mod:`certstore.exchange.worker` — the exchange task: ``ExchangeSource``, ``run_cycle``, ``ExchangeWorker``.
- :mod:`certstore.exchange.metrics` — Prometheus metrics (``metrics_text``) and ``exchange_status``.
- :mod:`certstore.services.deadlines` — arrival deadlines and the offenders report.
- :mod:`certstore.exchange.upward` — aggregation into the provincial repository.

Nothing is imported here, so importing one part does not load the others. See ``docs/exchange.md``.
"""
