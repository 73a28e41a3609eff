"""Load-side helpers for suspended generators (see ``_reconstruct.make_generator``).

Private: payloads name only the ``_reconstruct`` functions; what is here may
change. A saved frame is checked against its code before the native
``_gen_restore`` writes it: the slot count against the code's locals, cells
and free variables, the stack depth against the exact depth the compiler's
stack model gives at that instruction, the instruction against the points
where a frame can be suspended.
"""

import dis
import hashlib
import pickle
import sys
import types

# CPython's ``PyFrameState`` values, per minor version.
if sys.version_info >= (3, 13):
    CREATED, SUSPENDED, SUSPENDED_YIELD_FROM, COMPLETED = -3, -2, -1, 1
else:
    CREATED, SUSPENDED, SUSPENDED_YIELD_FROM, COMPLETED = -2, -1, None, 1
_SUSPENDED = {SUSPENDED, SUSPENDED_YIELD_FROM} - {None}
# co_flags of code whose call makes a generator, coroutine or async generator.
GENERATOR_FLAGS = 0x20 | 0x80 | 0x200

# Caches, each dropped whole past _CACHE_SIZE entries: id(code) -> (code,
# digest) (the code is held, so its id is not reused), digest -> depths.
_CACHE_SIZE = 4096
_digests = {}
_depths = {}


def _code_fields(code):
    """Everything a frame of ``code`` depends on, nested code included, in a
    form that is the same in every process (no hash-seeded orders)."""
    consts = []
    for c in code.co_consts:
        if isinstance(c, types.CodeType):
            consts.append(("code", code_digest(c)))
        elif isinstance(c, frozenset):
            consts.append(("frozenset", sorted(repr(x) for x in c)))
        else:
            consts.append(repr(c))
    return repr(
        (
            code.co_code,
            code.co_exceptiontable,
            code.co_argcount,
            code.co_posonlyargcount,
            code.co_kwonlyargcount,
            code.co_nlocals,
            code.co_stacksize,
            code.co_flags,
            code.co_varnames,
            code.co_cellvars,
            code.co_freevars,
            code.co_names,
            consts,
        )
    ).encode()


def code_digest(code):
    """A digest of what a frame of ``code`` runs: equal digests mean a saved
    instruction offset and stack mean the same thing in both codes."""
    known = _digests.get(id(code))
    if known is not None and known[0] is code:
        return known[1]
    digest = hashlib.sha256(_code_fields(code)).hexdigest()[:32]
    if len(_digests) >= _CACHE_SIZE:
        _digests.clear()
    _digests[id(code)] = (code, digest)
    return digest


def _refuse(msg):
    return pickle.UnpicklingError(msg)


def dummy_call(func):
    """A fresh generator of ``func``: its frame has the size its code needs.
    The arguments are placeholders, replaced by the saved locals."""
    code = func.__code__
    kwonly = code.co_varnames[code.co_argcount : code.co_argcount + code.co_kwonlyargcount]
    return func(*[None] * code.co_argcount, **dict.fromkeys(kwonly))


def close_unstarted(gen):
    """Finish a generator that has not started; no code of it runs (and a
    coroutine so closed is not reported as never awaited)."""
    if isinstance(gen, types.AsyncGeneratorType):
        try:
            gen.aclose().send(None)
        except StopIteration:
            pass
    else:
        gen.close()


def nlocalsplus(code):
    """``co_nlocalsplus``: locals, the cells that are not also locals, free variables."""
    return len(code.co_varnames) + len(set(code.co_cellvars) - set(code.co_varnames)) + len(code.co_freevars)


def _jump_target(ins):
    target = getattr(ins, "jump_target", None)  # 3.13
    if target is None and (ins.opcode in dis.hasjrel or ins.opcode in dis.hasjabs):
        target = ins.argval
    return target


_UNCONDITIONAL = {"JUMP_FORWARD", "JUMP_BACKWARD", "JUMP_BACKWARD_NO_INTERRUPT", "JUMP", "JUMP_NO_INTERRUPT"}
_TERMINAL = {"RETURN_VALUE", "RETURN_CONST", "RAISE_VARARGS", "RERAISE"}


def stack_depths(code):
    """The stack depth before each instruction (by offset in code units), by
    the compiler's own stack model (``dis.stack_effect``) along every path,
    exception handlers included."""
    key = code_digest(code)
    known = _depths.get(key)
    if known is not None:
        return known
    instructions = list(dis.get_instructions(code))
    index = {ins.offset: i for i, ins in enumerate(instructions)}
    depths = {}
    work = [(0, 0)]
    for entry in dis._parse_exception_table(code):
        work.append((entry.target, entry.depth + int(entry.lasti) + 1))
    while work:
        offset, depth = work.pop()
        i = index.get(offset)
        while i is not None and i < len(instructions):
            ins = instructions[i]
            if ins.offset in depths:
                break
            depths[ins.offset] = depth
            arg = ins.arg
            if ins.opname == "RETURN_GENERATOR":
                depth += 1  # the first send's value, which POP_TOP drops
                i += 1
                continue
            target = _jump_target(ins)
            if target is not None:
                work.append((target, depth + dis.stack_effect(ins.opcode, arg, jump=True)))
                if ins.opname in _UNCONDITIONAL:
                    break
                depth += dis.stack_effect(ins.opcode, arg, jump=False)
            elif ins.opname in _TERMINAL:
                break
            else:
                depth += dis.stack_effect(ins.opcode, arg)
            i += 1
    result = {offset // 2: depth for offset, depth in depths.items()}
    if len(_depths) >= _CACHE_SIZE:
        _depths.clear()
    _depths[key] = result
    return result


def check_state(gen, state):
    """Raise UnpicklingError unless ``state`` fits ``gen``'s code."""
    if not isinstance(state, tuple) or len(state) != 8 or state[0] != 1:
        raise _refuse("unknown generator state format")
    _, frame_state, lasti, slots, present, exc_value, name, qualname = state
    code = (
        gen.gi_code
        if isinstance(gen, types.GeneratorType)
        else (gen.cr_code if isinstance(gen, types.CoroutineType) else gen.ag_code)
    )
    if not (
        isinstance(frame_state, int)
        and isinstance(lasti, int)
        and isinstance(slots, list)
        and isinstance(present, bytes)
        and isinstance(name, str)
        and isinstance(qualname, str)
    ):
        raise _refuse("malformed generator state")
    n = nlocalsplus(code)
    if len(slots) != len(present) or len(slots) < n:
        raise _refuse(f"generator {qualname}: {len(slots)} saved slots where its code has {n} locals")
    depth = len(slots) - n
    if depth > code.co_stacksize:
        raise _refuse(f"generator {qualname}: a stack of {depth} exceeds its code's {code.co_stacksize}")
    if frame_state == CREATED:
        if depth:
            raise _refuse(f"generator {qualname}: a generator not started has no stack")
        return
    if frame_state not in _SUSPENDED:
        raise _refuse(f"generator {qualname}: frame state {frame_state} cannot be restored")
    yield_at = lasti - 1 if sys.version_info >= (3, 13) else lasti
    expected = stack_depths(code).get(yield_at)
    if expected is None or code.co_code[2 * yield_at] != dis.opmap["YIELD_VALUE"]:
        raise _refuse(f"generator {qualname}: offset {lasti} is not a yield of its code")
    if depth != expected - 1:  # the yielded value is off the stack
        raise _refuse(f"generator {qualname}: a stack of {depth} where its code has {expected - 1} at offset {lasti}")
