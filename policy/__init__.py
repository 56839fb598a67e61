"""scamguard's Pulumi policy pack (run with `pulumi preview --policy-pack policy`).

The pack itself is ``__main__.py`` + ``PulumiPolicy.yaml``; the rules are plain functions in
``scamguard_policy`` so the tests run them on the mocked graph of every stack without the CLI.
"""
