"""Who answers a call the policy asks about, when it is not the person at the keyboard.

- `routing`: whether a call may be put to the AI at all (the hard floor: only calls every
  asking rule of which names `approver: ai`; never a deny, an opaque unit, a sandbox
  violation or a call outside the approved directories).
- `ai`: the AI approver (a separate model call with no tools, the call given as data, a
  strict answer) and the plan reviewer.
- `breaker`: the circuit breakers that hand a task back to a human.
- `model`: the one model call both make, through the agent SDK.

The gate asks here (leashd/gate/gate.py, `_approve`) and falls back to the human approvals
(leashd/gate/approvals.py) when this room says no or gives up; nothing here talks to a
connector.
"""
