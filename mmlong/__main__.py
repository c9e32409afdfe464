import sys

from mmlong.apps.cli import main

sys.exit(main())
