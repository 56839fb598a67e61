"""`python -m service`: serve the API on $HOST:$PORT (see service.server)."""

from service.server import main

if __name__ == "__main__":
    main()
