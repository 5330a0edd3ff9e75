"""Workflow specs several test modules use (each module may still keep its own variants)."""

from __future__ import annotations

# The DESIGN example without approvers or a timeout: write A, pause, write B.
SEED_SPEC = """\
name: publish-report
inputs:
  target: out/report
steps:
  - name: write_a
    action: file.write
    inputs:
      path: "${{ inputs.target }}/a.txt"
      content: hello
  - name: review
    type: human_approval
    message: "Publish B next to ${{ steps.write_a.outputs.path }}?"
  - name: write_b
    action: file.write
    inputs:
      path: "${{ inputs.target }}/b.txt"
      content: "${{ steps.write_a.outputs.bytes }}"
"""

# A short variant whose approval only "ann" may decide.
ANN_APPROVES_SPEC = """
name: publish
inputs: {target: out}
steps:
  - name: write_a
    action: file.write
    inputs: {path: "${{ inputs.target }}/a.txt", content: hello}
  - name: review
    type: human_approval
    message: "Publish next to ${{ steps.write_a.outputs.path }}?"
    approvers: [ann]
  - name: write_b
    action: file.write
    inputs: {path: "${{ inputs.target }}/b.txt", content: world}
"""
