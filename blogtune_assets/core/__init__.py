"""Domain logic of blogtune: plain Python, no Dagster import, each module one stage."""
