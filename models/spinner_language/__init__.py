"""The spinner language: what a spinner definition may say, and how it is read and checked.

- `steps.py`: one model per step type; `fields.py`: the setting types they share;
- `definition.py`: a whole definition and its hash; `durations.py`: "15m", "PT1H";
- `templating.py` (`{{payload.x}}`) and `expressions.py` (decision conditions);
- `errors.py`: located issues; `validation.py`: checks over a whole definition;
- `yaml_io.py`: the spinner file format.
"""
