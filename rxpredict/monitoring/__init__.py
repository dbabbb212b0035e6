"""Monitoring between clinic visits (issue 11): wearable and self-reported data per patient-day.

:mod:`rxpredict.monitoring.ingest` brings a patient's exported data (Apple
Health, a daily CSV, the wearables table's own format) into a registry's
``wearables`` table.
"""
