from gitmirror.cli import main

main()
