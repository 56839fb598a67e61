"""scamguard: the Pulumi program.  Reads the stack's settings, picks the target, deploys, exports."""

from infra.config import load_settings
from infra.deploy import deploy
from infra.targets import platform_for


def main() -> None:
    settings = load_settings()
    deploy(platform_for(settings), settings).export()


main()
