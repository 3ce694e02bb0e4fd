"""Checks REST answers recorded by a test against the jobmanager's OpenAPI document.

Usage: python3 openapi_check.py SPEC.json ANSWERS.json

ANSWERS is a list of {"path": template, "method": "GET", "status": 200, "body": ...}.
Every answer's status must be documented for its path and method, and a JSON body must
validate against the documented schema (OpenAPI 3.0, with `nullable`). Prints one line
per problem and exits 1 if there is any.
"""
import json
import sys

from openapi_schema_validator import OAS30Validator


def main():
    spec = json.load(open(sys.argv[1]))
    answers = json.load(open(sys.argv[2]))
    problems = []
    for answer in answers:
        where = f"{answer['method']} {answer['path']} -> {answer['status']}"
        operation = spec["paths"].get(answer["path"], {}).get(answer["method"].lower())
        if operation is None:
            problems.append(f"{where}: the path or method is not documented")
            continue
        response = operation["responses"].get(str(answer["status"]))
        if response is None:
            problems.append(f"{where}: the status is not documented")
            continue
        schema = response.get("content", {}).get("application/json", {}).get("schema")
        if schema is None or answer["body"] is None:
            continue
        validator = OAS30Validator({"allOf": [schema], "components": spec["components"]})
        for error in validator.iter_errors(answer["body"]):
            location = "/".join(str(p) for p in error.absolute_path)
            problems.append(f"{where}: at '{location}': {error.message}")
    for problem in problems:
        print(problem)
    print(f"{len(answers)} answers checked, {len(problems)} problems")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
