"""Screens for the CPU demo's recipe (`python -m benchmarks.demo.calibration`, RL from a start;
`python -m benchmarks.demo.sft_screen`, where SFT's stopping rules would stop).

They live here, not in services/sft beside `demo_policy`: they ship in no image and run no
service; they judge a recipe (task, SFT strength, model size, lr, prompts x G) in minutes, and
their figures are the "What we tried" and "A check that asks for adding" tables of
docs/notes.md. `services.sft.demo_policy`
builds and caches the starting policy both use.
"""
