"""Allow ``python -m bigbench``."""

from bigbench.cli import main

if __name__ == "__main__":
    main()
