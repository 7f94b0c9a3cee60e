from flowenv.cli import main

raise SystemExit(main())
