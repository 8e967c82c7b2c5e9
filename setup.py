"""The build step pyproject.toml cannot say: copy CHANGELOG.md and
docs/bench.json into dirty_ladder/data/ of the built package, so that an
installed (not editable) copy still shows each stage's changelog entry and
the bench's costs in `dirty-ladder tour` and `dirty-ladder book`.  An editable
install and a checkout read the two files where they are."""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

SHIPPED = ("CHANGELOG.md", "docs/bench.json")


class BuildPyWithDocs(build_py):
    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return
        data = Path(self.build_lib) / "dirty_ladder" / "data"
        self.mkpath(str(data))
        for name in SHIPPED:
            self.copy_file(name, str(data / Path(name).name))


setup(cmdclass={"build_py": BuildPyWithDocs})
