"""Sagas hosted as Temporal workflows: the router that delivers events, the workflow, the
worker and the activity that issues commands."""
