"""Label Studio 1.23.2 as the local emulator's human workforce: a managed server process that runs from its
own venv (`scripts/bootstrap.sh --labelstudio`, server.py) and a thin REST client for it (client.py)."""
