from sessrec_cli.cli import main

main()
