"""The exchange (数据交换): front-end database sync, and upward aggregation into the province.

- :mod:`certstore.exchange.frontend` — the front-end database contract (数据库前置机): tables, ``init_frontend``,
  ``FrontendWriter`` for agencies' scripts, receipts (回执).
- The exchange task: :mod:`~certstore.exchange.source` (``ExchangeSource``), :mod:`~certstore.exchange.lease`
  (one worker per source), :mod:`~certstore.exchange.cursor` (gap-safe cursors, the exactly-once ledger),
  :mod:`~certstore.exchange.plan` (a front-end row → a plan with its call, or a rejection),
  :mod:`~certstore.exchange.cycle` (``run_cycle``: read → plan → apply → receipts) and
  :mod:`certstore.exchange.worker` (``ExchangeWorker``; re-exports the public names).
- :mod:`certstore.services.exchange_metrics` (a read model below the adapters) — Prometheus metrics
  (``metrics_text``) and ``exchange_status``.
- :mod:`certstore.services.deadlines` — arrival deadlines and the offenders report.
- :mod:`certstore.exchange.upward` — aggregation into the provincial repository.

Nothing is imported here, so importing one part does not load the others. See ``docs/exchange.md``.
"""
