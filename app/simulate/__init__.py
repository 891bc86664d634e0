"""Simulation with a known truth, written through the same store as the app; one command, `python -m app.simulate`.

    cli.py              the command line and the setup the three share (settings, dataset, database, JSON)
    shared.py           seeded ids and the simulated annotators
    traffic.py          visitors, slates, clicks and likes, captions, labels and evaluation runs
    learning_loop.py    does the learning loop help? three arms under the same draws, and the IPS check
    generation_world.py the generation loop's hidden truth, visitors and simulated covers and captions
    generation_loop.py  the reward model, best-of-N and the prompt policy against that truth
"""
