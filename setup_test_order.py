"""Create an Autoenhance order from photos, wait for it, and download it as one ZIP.

    python setup_test_order.py house1.jpg house2.jpg [--wait] [--download out.zip]

`--help` lists the flags, the environment variables and the exit codes; the code is in
`app/cli/`.
"""

import sys

from app.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
