"""Load-side helpers for suspended generators (see ``_reconstruct.make_generator``).

Private: payloads name only the ``_reconstruct`` functions; what is here may
change. A saved frame is checked against its code before the native
``_gen_restore`` writes it: the slot count against the code's locals, cells
and free variables, the instruction against the points where a frame can be
suspended, and, by the resume model (``resume_requirements``, which
``_gen_restore`` calls itself), the stack's depth and each value against
what the eval loop trusts it to be there, and the locals it reads there
without a check.
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
# digest) (the code is held, so its id is not reused), digest -> the
# code's resume model (``resume_model``).
_CACHE_SIZE = 4096
_digests: dict[int, tuple[object, str]] = {}
_models: dict[str, object] = {}


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


# ---- what the saved stack and locals must hold at a resume point -----------
#
# Requirement bits of a saved slot; src/genframe.rs checks them (same values).
MAY_BE_EMPTY = 1 << 0  # NULL allowed (it may be a pushed NULL)
ITERATOR = 1 << 1  # its type has __next__ (PyIter_Check): FOR_ITER calls tp_iternext unchecked
LIST = 1 << 2  # exactly a list: LIST_APPEND/LIST_EXTEND, LIST_TO_TUPLE cast it
DICT = 1 << 3  # exactly a dict: MAP_ADD casts it, CALL_FUNCTION_EX trusts its kwargs
SET = 1 << 4  # exactly a set: SET_UPDATE casts it
TUPLE = 1 << 5  # exactly a tuple
STR = 1 << 6  # a str
EXCEPTION = 1 << 7  # a BaseException instance: the eval loop reads its traceback field
EXCEPTION_OR_NONE = 1 << 8  # None or a BaseException instance (the exception being handled)
LASTI = 1 << 9  # an exact int inside the code: RERAISE jumps there
KWNAMES = 1 << 10  # an exact tuple of exact strs (CALL_KW's keyword names)
EXCEPTION_LIST = 1 << 11  # an exact list of None or exceptions (except*'s raised ones)
FUNCTION = 1 << 12  # exactly a function: SET_FUNCTION_ATTRIBUTE writes its fields
_EXC = EXCEPTION | EXCEPTION_OR_NONE  # what an exception instance guarantees

_V = sys.version_info[:2]
_NULL_LOW = _V < (3, 13)  # the NULL of a call's pair is below the callable before 3.13


def _pair(oparg):
    """The two values of LOAD_GLOBAL / LOAD_ATTR / LOAD_SUPER_ATTR whose
    oparg asks for a call pair: one of them may be NULL."""
    if not oparg & 1:
        return (0,)
    return (MAY_BE_EMPTY, 0) if _NULL_LOW else (0, MAY_BE_EMPTY)


def _intrinsic(names, oparg):
    return names[oparg] if 0 <= oparg < len(names) else ""


def _call_intrinsic_1(oparg):
    name = _intrinsic(getattr(dis, "_intrinsic_1_descs", ()), oparg)
    if name == "INTRINSIC_LIST_TO_TUPLE":
        return 1, (TUPLE,), ((1, LIST),)
    if name == "INTRINSIC_STOPITERATION_ERROR":
        return 1, (0,), ((1, EXCEPTION),)
    if name == "INTRINSIC_TYPEALIAS":
        return 1, (0,), ((1, TUPLE),)
    return 1, (0,), ()


def _call_intrinsic_2(oparg):
    name = _intrinsic(getattr(dis, "_intrinsic_2_descs", ()), oparg)
    if name == "INTRINSIC_PREP_RERAISE_STAR":
        return 2, (EXCEPTION_OR_NONE,), ((2, EXCEPTION), (1, EXCEPTION_LIST))
    if name == "INTRINSIC_SET_FUNCTION_TYPE_PARAMS":
        return 2, (FUNCTION,), ((2, FUNCTION), (1, TUPLE))
    return 2, (0,), ()


# Per opcode, from Python/ceval.c (3.11) and Python/bytecodes.c (3.12, 3.13):
# (pops, guarantees of what it pushes (bottom first; unnamed pushes: any
# object), needs: (depth from the top before popping, bits)). ``pops`` is the
# number of top slots the instruction replaces; slots it only reads stay
# (LIST_APPEND's list), so that what a slot holds is followed across them.
# How many it pushes is ``pops`` plus ``dis.stack_effect``. A callable gets
# the oparg; ``_spec`` adjusts the few whose branches pop differently. COPY,
# SWAP, END_SEND and RETURN_GENERATOR are followed in ``_analyse``; code with
# an opcode not here cannot be resumed (no resume point is trusted in code
# the table does not describe).
_ANY1 = (1, (), ())
_OPS = {
    **dict.fromkeys(
        ["NOP", "RESUME", "EXTENDED_ARG", "CACHE", "KW_NAMES", "MAKE_CELL", "COPY_FREE_VARS"]
        + ["DELETE_FAST", "DELETE_DEREF", "DELETE_NAME", "DELETE_GLOBAL", "SETUP_ANNOTATIONS"]
        + ["JUMP_FORWARD", "JUMP_BACKWARD", "JUMP_BACKWARD_NO_INTERRUPT"],
        (0, (), ()),
    ),
    **dict.fromkeys(
        ["LOAD_CONST", "LOAD_FAST", "LOAD_FAST_CHECK", "LOAD_DEREF", "LOAD_CLOSURE", "LOAD_CLASSDEREF"]
        + ["LOAD_NAME", "LOAD_ASSERTION_ERROR", "LOAD_BUILD_CLASS", "LOAD_LOCALS", "GET_LEN"]
        + ["MATCH_MAPPING", "MATCH_SEQUENCE", "IMPORT_FROM", "GET_ANEXT"],
        (0, (), ()),
    ),
    "LOAD_FAST_AND_CLEAR": (0, (MAY_BE_EMPTY,), ()),
    "LOAD_FAST_LOAD_FAST": (0, (), ()),
    "PUSH_NULL": (0, (MAY_BE_EMPTY,), ()),
    "LOAD_GLOBAL": lambda a: (0, _pair(a), ()),
    "LOAD_ATTR": lambda a: (1, _pair(a) if _V >= (3, 12) else (0,), ()),
    "LOAD_METHOD": (1, (MAY_BE_EMPTY, 0), ()),  # 3.11: (NULL, attr) or (method, self)
    "LOAD_SUPER_ATTR": lambda a: (3, _pair(a), ()),
    **dict.fromkeys(
        ["POP_TOP", "STORE_FAST", "STORE_DEREF", "STORE_NAME", "STORE_GLOBAL", "DELETE_ATTR"]
        + ["IMPORT_STAR", "PRINT_EXPR", "EXIT_INIT_CHECK", "RETURN_VALUE"]
        + ["POP_JUMP_IF_FALSE", "POP_JUMP_IF_TRUE", "POP_JUMP_IF_NONE", "POP_JUMP_IF_NOT_NONE"]
        + ["POP_JUMP_FORWARD_IF_FALSE", "POP_JUMP_FORWARD_IF_TRUE", "POP_JUMP_FORWARD_IF_NONE"]
        + ["POP_JUMP_FORWARD_IF_NOT_NONE", "POP_JUMP_BACKWARD_IF_FALSE", "POP_JUMP_BACKWARD_IF_TRUE"]
        + ["POP_JUMP_BACKWARD_IF_NONE", "POP_JUMP_BACKWARD_IF_NOT_NONE"],
        (1, (), ()),
    ),
    # 3.11: the jump keeps the value, falling through pops it (``_spec``).
    **dict.fromkeys(["JUMP_IF_FALSE_OR_POP", "JUMP_IF_TRUE_OR_POP"], (0, (), ())),
    "STORE_FAST_LOAD_FAST": _ANY1,
    "STORE_FAST_STORE_FAST": (2, (), ()),
    "RETURN_CONST": (0, (), ()),
    "STORE_ATTR": (2, (), ()),
    "DELETE_SUBSCR": (2, (), ()),
    "STORE_SUBSCR": (3, (), ()),
    "STORE_SLICE": (4, (), ()),
    **dict.fromkeys(
        ["UNARY_NEGATIVE", "UNARY_NOT", "UNARY_INVERT", "UNARY_POSITIVE", "TO_BOOL", "CONVERT_VALUE"]
        + ["GET_AWAITABLE", "GET_AITER", "GET_YIELD_FROM_ITER", "YIELD_VALUE", "ASYNC_GEN_WRAP"]
        + ["LOAD_FROM_DICT_OR_DEREF", "LOAD_FROM_DICT_OR_GLOBALS", "BEFORE_WITH", "BEFORE_ASYNC_WITH"],
        _ANY1,
    ),
    "GET_ITER": (1, (ITERATOR,), ()),
    "FORMAT_SIMPLE": (1, (STR,), ()),
    "FORMAT_WITH_SPEC": (2, (STR,), ()),
    "FORMAT_VALUE": lambda a: (2 if a & 4 else 1, (STR,), ()),
    **dict.fromkeys(["BINARY_OP", "BINARY_SUBSCR", "COMPARE_OP", "IS_OP", "CONTAINS_OP", "IMPORT_NAME"], (2, (), ())),
    "BINARY_SLICE": (3, (), ()),
    "MATCH_CLASS": (3, (), ((1, TUPLE),)),
    "MATCH_KEYS": (0, (), ((1, TUPLE),)),
    "UNPACK_SEQUENCE": _ANY1,
    "UNPACK_EX": _ANY1,
    "RAISE_VARARGS": lambda a: (a, (), ()),
    "BUILD_TUPLE": lambda a: (a, (TUPLE,), ()),
    "BUILD_LIST": lambda a: (a, (LIST,), ()),
    "BUILD_SET": lambda a: (a, (SET,), ()),
    "BUILD_STRING": lambda a: (a, (STR,), ()),
    "BUILD_SLICE": lambda a: (a, (), ()),
    "BUILD_MAP": lambda a: (2 * a, (DICT,), ()),
    "BUILD_CONST_KEY_MAP": lambda a: (a + 1, (DICT,), ((1, TUPLE),)),
    "LIST_APPEND": lambda a: (1, (), ((a + 1, LIST),)),
    "LIST_EXTEND": lambda a: (1, (), ((a + 1, LIST),)),
    "SET_ADD": lambda a: (1, (), ((a + 1, SET),)),
    "SET_UPDATE": lambda a: (1, (), ((a + 1, SET),)),
    "DICT_UPDATE": lambda a: (1, (), ((a + 1, DICT),)),
    "DICT_MERGE": lambda a: (1, (), ((a + 1, DICT),)),
    "MAP_ADD": lambda a: (2, (), ((a + 2, DICT),)),
    "LIST_TO_TUPLE": (1, (TUPLE,), ((1, LIST),)),
    "CALL_INTRINSIC_1": _call_intrinsic_1,
    "CALL_INTRINSIC_2": _call_intrinsic_2,
    # 3.11 splits a call in two; the model (dis.stack_effect) pops the
    # arguments at PRECALL and the pair at CALL, and nothing runs between.
    "PRECALL": lambda a: (a + 2, (MAY_BE_EMPTY, 0), ()),
    "CALL": lambda a: (2 if _V < (3, 12) else a + 2, (), ()),
    "CALL_KW": lambda a: (a + 3, (), ((1, KWNAMES),)),
    "CALL_FUNCTION_EX": lambda a: (3 + (a & 1), (), ((1, DICT),) if a & 1 else ()),
    "MAKE_FUNCTION": lambda a: (1 + (bin(a & 0xF).count("1") if _V < (3, 13) else 0), (FUNCTION,), ()),
    "SET_FUNCTION_ATTRIBUTE": (2, (FUNCTION,), ((1, FUNCTION),)),
    "FOR_ITER": (0, (), ((1, ITERATOR),)),  # 3.11's exhausted jump pops the iterator too
    "END_FOR": (2 if _V < (3, 13) else 1, (), ()),
    "SEND": (1, (), ()),  # the receiver stays (3.11's return jump pops it: ``_spec``)
    "CLEANUP_THROW": (3, (), ((1, EXCEPTION),)),
    "END_ASYNC_FOR": (2, (), ((1, EXCEPTION),)),
    "PUSH_EXC_INFO": (1, (EXCEPTION_OR_NONE, _EXC), ((1, EXCEPTION),)),
    "POP_EXCEPT": (1, (), ((1, EXCEPTION_OR_NONE),)),
    "RERAISE": lambda a: (1, (), ((1, EXCEPTION), (a + 1, LASTI)) if a else ((1, EXCEPTION),)),
    "WITH_EXCEPT_START": (0, (), ((1, EXCEPTION),)),
    "CHECK_EXC_MATCH": _ANY1,  # the exception stays below the result
    "CHECK_EG_MATCH": (2, (EXCEPTION_OR_NONE, 0), ((2, EXCEPTION_OR_NONE),)),
    "PREP_RERAISE_STAR": (2, (EXCEPTION_OR_NONE,), ((2, EXCEPTION), (1, EXCEPTION_LIST))),
}
_TERMINAL = {"RETURN_VALUE", "RETURN_CONST", "RAISE_VARARGS", "RERAISE"}


def _jump_target(ins):
    target = getattr(ins, "jump_target", None)  # 3.13
    if target is None and (ins.opcode in dis.hasjrel or ins.opcode in dis.hasjabs):
        target = ins.argval
    return target


_UNCONDITIONAL = {"JUMP_FORWARD", "JUMP_BACKWARD", "JUMP_BACKWARD_NO_INTERRUPT", "JUMP", "JUMP_NO_INTERRUPT"}


class _Unmodelled(Exception):
    """The code does things the model does not describe."""


def _spec(ins, jump):
    """(pops, pushes' guarantees, needs) of ``ins`` on one of its branches."""
    name, arg = ins.opname, ins.arg or 0
    spec = _OPS.get(name)
    if spec is None:
        raise _Unmodelled(f"opcode {name}")
    pops, outs, needs = spec(arg) if callable(spec) else spec
    if name in ("JUMP_IF_FALSE_OR_POP", "JUMP_IF_TRUE_OR_POP") and not jump:
        pops = 1
    elif jump and _V < (3, 12) and name in ("FOR_ITER", "SEND"):
        pops += 1  # 3.11: the exhausted iterator / finished receiver goes too
    return pops, outs, needs


def _effect(ins, jump):
    return dis.stack_effect(ins.opcode, ins.arg if ins.opcode >= dis.HAVE_ARGUMENT else None, jump=jump)


def _analyse(code):
    """Abstract interpretation of ``code``: for each YIELD_VALUE (by code
    unit), the requirement bits of each slot of the stack saved there
    (bottom first) and the locals that must not be empty there.

    Each stack slot is the set of values (where they were pushed) it may
    hold; a value's guarantee is what its producer makes (a list from
    BUILD_LIST), its needs what any instruction consuming it relies on
    unchecked. A slot requires the guarantees all its values share and the
    needs of any of them; it may be empty only if one of its values may be
    NULL. Exception handlers receive the stack prefix of every instruction
    they cover, then (lasti,) exception."""
    instructions = list(dis.get_instructions(code))
    at = {ins.offset: i for i, ins in enumerate(instructions)}
    handler_of = {}
    for entry in dis._parse_exception_table(code):
        for ins in instructions[at.get(entry.start, len(instructions)) :]:
            if ins.offset >= entry.end:
                break
            handler_of.setdefault(ins.offset, entry)
    guarantees, needs, ids = [], [], {}

    def value(key, bits):
        vid = ids.get(key)
        if vid is None:
            vid = ids[key] = len(guarantees)
            guarantees.append(bits)
            needs.append(0)
        return vid

    def held(local):
        """What a local holds, as one value: what the code does with any
        load of it is required of it (a generator expression's ``.0``
        goes straight to FOR_ITER: an iterator)."""
        return frozenset([value(("local", local), 0)])

    states, successors, work = {}, {}, []

    def reach(offset, state):
        if offset not in at:
            raise _Unmodelled(f"a jump to {offset}")
        old = states.get(offset)
        if old is not None:
            if len(old) != len(state):
                raise _Unmodelled(f"stacks of {len(old)} and {len(state)} meet at {offset}")
            state = tuple(a | b for a, b in zip(old, state))
            if state == old:
                return
        states[offset] = state
        work.append(offset)

    reach(0, ())
    while work:
        offset = work.pop()
        i = at[offset]
        ins, state = instructions[i], states[offset]
        entry = handler_of.get(offset)
        if entry is not None:
            if len(state) < entry.depth:
                raise _Unmodelled(f"a handler deeper than the stack at {offset}")
            pushed = (frozenset([value(("lasti", entry.target), LASTI)]),) if entry.lasti else ()
            reach(entry.target, state[: entry.depth] + pushed + (frozenset([value(("exc", entry.target), _EXC)]),))
        name = ins.opname
        target = _jump_target(ins)
        branches = [(target, True)] if target is not None else []
        if name not in _UNCONDITIONAL and name not in _TERMINAL:
            if i + 1 >= len(instructions):
                raise _Unmodelled("control runs off the end")
            branches.append((instructions[i + 1].offset, False))
        successors[offset] = [t for t, _ in branches]
        for to, jump in branches:
            if name == "COPY":
                new = state + (state[-ins.arg],)
            elif name == "SWAP":
                new = list(state)
                new[-1], new[-ins.arg] = new[-ins.arg], new[-1]
                new = tuple(new)
            elif name == "END_SEND":  # (receiver, value -- value)
                new = state[:-2] + state[-1:]
            elif name == "RETURN_GENERATOR":  # the first send's value, which POP_TOP drops
                new = state + (frozenset([value((offset, 0), 0)]),)
            elif name in ("LOAD_FAST", "LOAD_FAST_CHECK"):
                new = state + (held(ins.arg),)
            elif name == "LOAD_FAST_LOAD_FAST":
                new = state + (held(ins.arg >> 4), held(ins.arg & 15))
            elif name == "STORE_FAST_LOAD_FAST":
                new = state[:-1] + (held(ins.arg & 15),)
            else:
                pops, outs, uses = _spec(ins, jump)
                for depth, bits in uses:
                    for vid in state[-depth]:
                        needs[vid] |= bits
                pushes = pops + _effect(ins, jump)
                if pops > len(state) or pushes < 0:
                    raise _Unmodelled(f"{name} at {offset} pops {pops} of a stack of {len(state)}")
                new = state[: len(state) - pops] + tuple(
                    frozenset([value((offset, jump, k), outs[k] if k < len(outs) else 0)]) for k in range(pushes)
                )
            reach(to, new)
        if name in _TERMINAL:
            for depth, bits in _spec(ins, False)[2]:
                for vid in state[-depth]:
                    needs[vid] |= bits
    live = _live_locals(instructions, states, successors, handler_of)

    def locals_at(offset):
        """(index, requirement bits) of each local that must be set there or
        must be of some kind when set. Slots past co_varnames are cells and
        free variables (3.13 reads them with LOAD_FAST): _gen_restore
        requires a cell in each anyway."""
        present = live.get(offset, 0)
        required = []
        for i in range(len(code.co_varnames)):
            vid = ids.get(("local", i))
            bits = (0 if present >> i & 1 else MAY_BE_EMPTY) | (needs[vid] if vid is not None else 0)
            if bits != MAY_BE_EMPTY:
                required.append((i, bits))
        return tuple(required)

    # A generator not started runs from the instruction after
    # RETURN_GENERATOR (other code from its first: only its arguments can be
    # needed there, which tests check of the whole stdlib).
    first = next((i + 1 for i, ins in enumerate(instructions) if ins.opname == "RETURN_GENERATOR"), 0)
    model = {None: ((), locals_at(instructions[first].offset) if first < len(instructions) else ())}
    for offset, state in states.items():
        if instructions[at[offset]].opname != "YIELD_VALUE":
            continue
        slots = []
        for vids in state[:-1]:  # the yielded value is off the stack
            shared, needed = ~MAY_BE_EMPTY, 0
            for vid in vids:
                shared &= guarantees[vid]
                needed |= needs[vid] | (guarantees[vid] & MAY_BE_EMPTY)
            slots.append(shared | needed)
        model[offset // 2] = (tuple(slots), locals_at(offset))
    return model


def _reads_and_writes(ins):
    """The locals ``ins`` reads without checking that they are set (3.12+
    trusts the compiler's proof), and those it sets, deletes, or checks
    (after LOAD_FAST_CHECK a local is set, or an exception went to the
    handler: the compiler reads it unchecked from there on), first."""
    name, arg = ins.opname, ins.arg
    if _V < (3, 12):
        reads = 0  # 3.11 checks every LOAD_FAST
    elif name == "LOAD_FAST":
        reads = 1 << arg
    elif name == "LOAD_FAST_LOAD_FAST":
        reads = 1 << (arg >> 4) | 1 << (arg & 15)
    elif name == "STORE_FAST_LOAD_FAST":  # stores arg >> 4, then reads arg & 15 (set, if the same)
        return 1 << (arg & 15) & ~(1 << (arg >> 4)), 1 << (arg >> 4)
    else:
        reads = 0
    if name in ("STORE_FAST", "DELETE_FAST", "LOAD_FAST_AND_CLEAR", "LOAD_FAST_CHECK", "LOAD_CLOSURE", "MAKE_CELL"):
        return reads, 1 << arg
    if name == "STORE_FAST_STORE_FAST":
        return reads, 1 << (arg >> 4) | 1 << (arg & 15)
    return reads, 0


def _live_locals(instructions, states, successors, handler_of):
    """Per reachable offset, the locals (a bit each) that some path from it
    reads unchecked before storing or deleting them; an exception raised
    at an instruction goes to its handler, so the handler's are too."""
    effects = {ins.offset: _reads_and_writes(ins) for ins in instructions if ins.offset in states}
    if not any(reads for reads, _ in effects.values()):
        return {}
    live = dict.fromkeys(effects, 0)
    order = sorted(effects, reverse=True)
    changed = True
    while changed:
        changed = False
        for offset in order:
            out = 0
            for to in successors.get(offset, ()):
                out |= live[to]
            reads, writes = effects[offset]
            if (entry := handler_of.get(offset)) is not None:
                handler_live = live[entry.target]
            else:
                handler_live = 0
            new = (out & ~writes) | reads | handler_live
            if new != live[offset]:
                live[offset] = new
                changed = True
    return live


def resume_model(code):
    """``_analyse(code)``, cached by the code's digest; an UnpicklingError
    message instead where the code cannot be modelled."""
    key = code_digest(code)
    known = _models.get(key)
    if known is not None:
        return known
    try:
        result = _analyse(code)
    except IndexError:
        result = "its code cannot be checked (a stack shorter than an instruction reads)"
    except _Unmodelled as e:
        result = f"its code cannot be checked ({e})"
    if len(_models) >= _CACHE_SIZE:
        _models.clear()
    _models[key] = result
    return result


def resume_requirements(code, lasti):
    """What a frame of ``code`` saved at ``lasti`` (as ``_gen_restore`` takes
    it; None for a frame not started) must hold: ``(stack requirement bits,
    bottom first; (index, requirement bits) of the locals that must be set
    or of some kind)``. None if ``lasti``
    is not a resume point of ``code``; a str (why) if the code cannot be
    checked. ``_gen_restore`` calls this itself before writing a frame."""
    model = resume_model(code)
    if isinstance(model, str) or lasti is None:
        return model if isinstance(model, str) else model[None]
    return model.get(lasti - 1 if _V >= (3, 13) else lasti)


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
    required = resume_requirements(code, lasti)
    if isinstance(required, str):
        raise _refuse(f"generator {qualname}: {required}")
    if required is None:
        raise _refuse(f"generator {qualname}: offset {lasti} is not a yield of its code")
    if depth != len(required[0]):
        raise _refuse(
            f"generator {qualname}: a stack of {depth} where its code has {len(required[0])} at offset {lasti}"
        )
