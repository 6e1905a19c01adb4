"""Data preparation behind dataprep.py: fetching, unpacking and converting VoxCeleb, MUSAN and the
room impulse responses, and synthesising the demo set.

Nothing here imports torch, so preparing data needs neither a GPU build nor its start-up time."""
