"""The human-feedback web app: collect judgements, measure their quality, export them.

Modules: :mod:`~tether.feedback.db` (tables, SQLite WAL / PostgreSQL engines),
:mod:`~tether.feedback.tasks` (task types, answers, gold checks),
:mod:`~tether.feedback.store` (users, campaigns, assignment, idempotent submission),
:mod:`~tether.feedback.app` (FastAPI pages and JSON API),
:mod:`~tether.feedback.agreement` (Krippendorff's alpha, Cohen's and Fleiss' kappa),
:mod:`~tether.feedback.quality` (a campaign's report), :mod:`~tether.feedback.export`
(training data in DESIGN.md's formats), :mod:`~tether.feedback.audit` (human auditing
of high-reward outputs), :mod:`~tether.feedback.serving` (policies for red-teaming and
sampling, loaded lazily) and :mod:`~tether.feedback.commands` (``tether feedback``).

It never imports a training stage; stages read its exports (DESIGN.md, "Layout").
"""
