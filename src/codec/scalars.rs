//! Values carried whole in one ext payload, both directions: ints beyond 64
//! bits, complex, datetime/date/time/timedelta with their tzinfo, Decimal,
//! UUID, and strs with lone surrogates. None of them has children in the
//! graph, so none takes part in back-references.

use pyo3::ffi;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{
    PyDate, PyDateAccess, PyDateTime, PyDelta, PyDeltaAccess, PyDict, PyString, PyTime,
    PyTimeAccess, PyTuple, PyType, PyTzInfo, PyTzInfoAccess,
};
use rmp::encode::{self as write, RmpWrite};
use rmp::Marker;

use super::encode::EncodeFault;
use super::ext::{self, close_ext, open_ext};
use super::output::Output;
use super::reader::{Reader, Res};
use super::strings::new_bytes;

/// The stdlib classes the codec knows by exact type, imported when the
/// codec is made (so that loading never imports).
pub struct StdTypes {
    pub datetime: Py<PyType>,
    pub date: Py<PyType>,
    pub time: Py<PyType>,
    pub timedelta: Py<PyType>,
    pub timezone: Py<PyType>,
    pub zoneinfo: Py<PyType>,
    pub decimal: Py<PyType>,
    pub uuid: Py<PyType>,
}

impl StdTypes {
    pub fn import(py: Python<'_>) -> PyResult<StdTypes> {
        let get = |module: &str, name: &str| -> PyResult<Py<PyType>> {
            Ok(py.import(module)?.getattr(name)?.cast_into()?.unbind())
        };
        Ok(StdTypes {
            datetime: get("datetime", "datetime")?,
            date: get("datetime", "date")?,
            time: get("datetime", "time")?,
            timedelta: get("datetime", "timedelta")?,
            timezone: get("datetime", "timezone")?,
            zoneinfo: get("zoneinfo", "ZoneInfo")?,
            decimal: get("decimal", "Decimal")?,
            uuid: get("uuid", "UUID")?,
        })
    }
}

/// An ext whose payload is already in hand.
pub fn write_ext(out: &mut Output, code: i8, payload: &[u8]) -> Result<(), EncodeFault> {
    let len = u32::try_from(payload.len()).map_err(|_| {
        EncodeFault::Refused(format!(
            "an ext payload of {} bytes is over MessagePack's 4 GiB limit",
            payload.len()
        ))
    })?;
    write::write_ext_meta(out, len, code)?;
    out.write_bytes(payload)?;
    Ok(())
}

fn write_int(out: &mut Output, value: i64) -> Result<(), EncodeFault> {
    write::write_sint(out, value)?;
    Ok(())
}

pub fn write_bigint(out: &mut Output, obj: &Bound<'_, PyAny>) -> Result<(), EncodeFault> {
    write_ext(out, ext::BIGINT, &crate::pyutil::int_to_le_bytes(obj)?)
}

pub fn write_complex(out: &mut Output, obj: &Bound<'_, PyAny>) -> Result<(), EncodeFault> {
    // SAFETY: `obj` is an exact complex (the caller checked its type).
    let (real, imag) = unsafe {
        (
            ffi::PyComplex_RealAsDouble(obj.as_ptr()),
            ffi::PyComplex_ImagAsDouble(obj.as_ptr()),
        )
    };
    let mut payload = [0u8; 16];
    payload[..8].copy_from_slice(&real.to_be_bytes());
    payload[8..].copy_from_slice(&imag.to_be_bytes());
    write_ext(out, ext::COMPLEX, &payload)
}

pub fn write_decimal(out: &mut Output, obj: &Bound<'_, PyAny>) -> Result<(), EncodeFault> {
    let text = obj.str()?;
    write_ext(out, ext::DECIMAL, text.to_str()?.as_bytes())
}

pub fn write_uuid(out: &mut Output, obj: &Bound<'_, PyAny>) -> Result<(), EncodeFault> {
    let value: u128 = obj.getattr(intern!(obj.py(), "int"))?.extract()?;
    write_ext(out, ext::UUID, &value.to_be_bytes())
}

pub fn write_datetime(
    out: &mut Output,
    obj: &Bound<'_, PyAny>,
    types: &StdTypes,
) -> Result<(), EncodeFault> {
    let dt = obj.cast::<PyDateTime>().map_err(PyErr::from)?;
    let at = open_ext(out, ext::DATETIME)?;
    write::write_array_len(out, 9)?;
    for part in [
        i64::from(dt.get_year()),
        i64::from(dt.get_month()),
        i64::from(dt.get_day()),
    ] {
        write_int(out, part)?;
    }
    let clock = [dt.get_hour(), dt.get_minute(), dt.get_second()];
    write_clock(
        out,
        clock,
        dt.get_microsecond(),
        dt.get_fold(),
        dt.get_tzinfo(),
        types,
    )?;
    close_ext(out, at)
}

/// The time-of-day fields `datetime` and `time` share: hour, minute, second,
/// microsecond, fold, tz.
fn write_clock(
    out: &mut Output,
    [hour, minute, second]: [u8; 3],
    microsecond: u32,
    fold: bool,
    tz: Option<Bound<'_, PyTzInfo>>,
    types: &StdTypes,
) -> Result<(), EncodeFault> {
    for part in [
        i64::from(hour),
        i64::from(minute),
        i64::from(second),
        i64::from(microsecond),
    ] {
        write_int(out, part)?;
    }
    write::write_bool(out, fold)?;
    write_tz(out, tz, types)
}

pub fn write_date(out: &mut Output, obj: &Bound<'_, PyAny>) -> Result<(), EncodeFault> {
    let d = obj.cast::<PyDate>().map_err(PyErr::from)?;
    let at = open_ext(out, ext::DATE)?;
    write::write_array_len(out, 3)?;
    for part in [
        i64::from(d.get_year()),
        i64::from(d.get_month()),
        i64::from(d.get_day()),
    ] {
        write_int(out, part)?;
    }
    close_ext(out, at)
}

pub fn write_time(
    out: &mut Output,
    obj: &Bound<'_, PyAny>,
    types: &StdTypes,
) -> Result<(), EncodeFault> {
    let t = obj.cast::<PyTime>().map_err(PyErr::from)?;
    let at = open_ext(out, ext::TIME)?;
    write::write_array_len(out, 6)?;
    write_clock(
        out,
        [t.get_hour(), t.get_minute(), t.get_second()],
        t.get_microsecond(),
        t.get_fold(),
        t.get_tzinfo(),
        types,
    )?;
    close_ext(out, at)
}

pub fn write_timedelta(out: &mut Output, obj: &Bound<'_, PyAny>) -> Result<(), EncodeFault> {
    let td = obj.cast::<PyDelta>().map_err(PyErr::from)?;
    let at = open_ext(out, ext::TIMEDELTA)?;
    write::write_array_len(out, 3)?;
    for part in [
        i64::from(td.get_days()),
        i64::from(td.get_seconds()),
        i64::from(td.get_microseconds()),
    ] {
        write_int(out, part)?;
    }
    close_ext(out, at)
}

/// A tzinfo on its own (`timezone.utc` as a dict value, say).
pub fn write_tzinfo(
    out: &mut Output,
    obj: &Bound<'_, PyAny>,
    types: &StdTypes,
) -> Result<(), EncodeFault> {
    let tz = obj.cast::<PyTzInfo>().map_err(PyErr::from)?;
    let at = open_ext(out, ext::TZINFO)?;
    write_tz(out, Some(tz.clone()), types)?;
    close_ext(out, at)
}

/// Whether `obj` is a tzinfo this codec can carry.
pub fn is_known_tz(obj: &Bound<'_, PyAny>, types: &StdTypes) -> bool {
    let tp = obj.get_type();
    tp.is(types.timezone.bind(obj.py())) || tp.is(types.zoneinfo.bind(obj.py()))
}

fn delta_microseconds(delta: &Bound<'_, PyDelta>) -> i64 {
    (i64::from(delta.get_days()) * 86_400 + i64::from(delta.get_seconds())) * 1_000_000
        + i64::from(delta.get_microseconds())
}

/// The tz value inside a datetime/time payload: nil (naive), an int (a
/// fixed offset in microseconds), `[offset, name]` (a named fixed offset),
/// or a str (a `zoneinfo.ZoneInfo` key).
fn write_tz(
    out: &mut Output,
    tz: Option<Bound<'_, PyTzInfo>>,
    types: &StdTypes,
) -> Result<(), EncodeFault> {
    let Some(tz) = tz else {
        write::write_nil(out)?;
        return Ok(());
    };
    let py = tz.py();
    let tp = tz.get_type();
    if tp.is(types.timezone.bind(py)) {
        // (offset,) or (offset, name): the constructor's own arguments.
        let args = tz.call_method0(intern!(py, "__getinitargs__"))?;
        let args = args.cast::<PyTuple>().map_err(PyErr::from)?;
        let offset = delta_microseconds(args.get_item(0)?.cast::<PyDelta>().map_err(PyErr::from)?);
        if args.len() == 2 {
            write::write_array_len(out, 2)?;
            write_int(out, offset)?;
            write_text(
                out,
                args.get_item(1)?.cast::<PyString>().map_err(PyErr::from)?,
            )?;
        } else {
            write_int(out, offset)?;
        }
        return Ok(());
    }
    if tp.is(types.zoneinfo.bind(py)) {
        let key = tz.getattr(intern!(py, "key"))?;
        if key.is_none() {
            return Err(EncodeFault::Refused(
                "cannot encode a ZoneInfo without a key (made by from_file)".into(),
            ));
        }
        return write_text(out, key.cast::<PyString>().map_err(PyErr::from)?);
    }
    Err(EncodeFault::Refused(format!(
        "cannot encode tzinfo of type '{}' (only datetime.timezone and zoneinfo.ZoneInfo)",
        crate::pyutil::type_name(&tz)
    )))
}

fn write_text(out: &mut Output, text: &Bound<'_, PyString>) -> Result<(), EncodeFault> {
    let text = text.to_str()?;
    write::write_str(out, text)?;
    Ok(())
}

/// Build the value of a fixed-layout ext payload, or `None` when `code` is
/// not one of them.
pub fn read<'py>(
    py: Python<'py>,
    code: i8,
    payload: &[u8],
    types: &StdTypes,
) -> Res<Option<Bound<'py, PyAny>>> {
    let mut r = Reader::new(payload);
    let value = match code {
        ext::BIGINT => {
            let bytes = r.take(payload.len())?;
            let kwargs = PyDict::new(py);
            kwargs.set_item(intern!(py, "signed"), true)?;
            py.get_type::<pyo3::types::PyInt>().call_method(
                intern!(py, "from_bytes"),
                (new_bytes(py, bytes)?, intern!(py, "little")),
                Some(&kwargs),
            )?
        }
        ext::COMPLEX => {
            let parts = r.array::<16>()?;
            let real = f64::from_be_bytes(parts[..8].try_into().expect("8 bytes"));
            let imag = f64::from_be_bytes(parts[8..].try_into().expect("8 bytes"));
            // SAFETY: makes a new complex; a null result is turned into the
            // pending exception.
            unsafe { Bound::from_owned_ptr_or_err(py, ffi::PyComplex_FromDoubles(real, imag))? }
        }
        ext::SURROGATE_STR => {
            let bytes = r.take(payload.len())?;
            // SAFETY: decodes `bytes` (valid for its length) into a new str.
            let obj = unsafe {
                ffi::PyUnicode_DecodeUTF8(
                    bytes.as_ptr().cast(),
                    crate::sizes::ssize(bytes.len()),
                    c"surrogatepass".as_ptr(),
                )
            };
            // SAFETY: a new reference or null with an exception set.
            unsafe { Bound::from_owned_ptr_or_err(py, obj)? }
        }
        ext::DECIMAL => {
            let Ok(text) = std::str::from_utf8(r.take(payload.len())?) else {
                return r.malformed("Decimal payload is not text");
            };
            types.decimal.bind(py).call1((text,))?
        }
        ext::UUID => {
            let value = u128::from_be_bytes(r.array::<16>()?);
            let kwargs = PyDict::new(py);
            kwargs.set_item(intern!(py, "int"), value)?;
            types.uuid.bind(py).call((), Some(&kwargs))?
        }
        ext::DATETIME => {
            r.array_of(9, "datetime")?;
            let (year, month, day) = (r.int_in("year")?, r.int_in("month")?, r.int_in("day")?);
            let (hour, minute, second, micro) = (
                r.int_in("hour")?,
                r.int_in("minute")?,
                r.int_in("second")?,
                r.int_in("microsecond")?,
            );
            let fold = r.bool()?;
            let tz = read_tz(py, &mut r, types)?;
            PyDateTime::new_with_fold(
                py,
                year,
                month,
                day,
                hour,
                minute,
                second,
                micro,
                tz.as_ref(),
                fold,
            )?
            .into_any()
        }
        ext::DATE => {
            r.array_of(3, "date")?;
            PyDate::new(py, r.int_in("year")?, r.int_in("month")?, r.int_in("day")?)?.into_any()
        }
        ext::TIME => {
            r.array_of(6, "time")?;
            let (hour, minute, second, micro) = (
                r.int_in("hour")?,
                r.int_in("minute")?,
                r.int_in("second")?,
                r.int_in("microsecond")?,
            );
            let fold = r.bool()?;
            let tz = read_tz(py, &mut r, types)?;
            PyTime::new_with_fold(py, hour, minute, second, micro, tz.as_ref(), fold)?.into_any()
        }
        ext::TIMEDELTA => {
            r.array_of(3, "timedelta")?;
            // Normalized: a hostile payload must not make a timedelta whose
            // seconds or microseconds are out of their ranges.
            PyDelta::new(
                py,
                r.int_in("days")?,
                r.int_in("seconds")?,
                r.int_in("microseconds")?,
                true,
            )?
            .into_any()
        }
        ext::TZINFO => match read_tz(py, &mut r, types)? {
            Some(tz) => tz.into_any(),
            None => return r.malformed("tzinfo ext without a timezone"),
        },
        _ => return Ok(None),
    };
    if !r.at_end() {
        return r.malformed("trailing bytes in ext payload");
    }
    Ok(Some(value))
}

fn read_tz<'py>(
    py: Python<'py>,
    r: &mut Reader<'_>,
    types: &StdTypes,
) -> Res<Option<Bound<'py, PyTzInfo>>> {
    let fixed = |offset: i64, name: Option<&str>| -> Res<Bound<'py, PyTzInfo>> {
        // |i64::MAX| microseconds is about 1.07e8 days: always an i32.
        let int = |v: i64| {
            i32::try_from(v).map_err(|_| PyErr::new::<pyo3::exceptions::PyOverflowError, _>(v))
        };
        let rest = offset.rem_euclid(86_400_000_000);
        let delta = PyDelta::new(
            py,
            int(offset.div_euclid(86_400_000_000))?,
            int(rest / 1_000_000)?,
            int(rest % 1_000_000)?,
            true,
        )?;
        let tz = match name {
            Some(name) => types.timezone.bind(py).call1((delta, name))?,
            None => types.timezone.bind(py).call1((delta,))?,
        };
        Ok(tz.cast_into().map_err(PyErr::from)?)
    };
    match r.peek_marker()? {
        Marker::Null => {
            r.byte()?;
            Ok(None)
        }
        Marker::FixStr(_) | Marker::Str8 | Marker::Str16 | Marker::Str32 => {
            let key = r.str()?;
            Ok(Some(
                types
                    .zoneinfo
                    .bind(py)
                    .call1((key,))?
                    .cast_into()
                    .map_err(PyErr::from)?,
            ))
        }
        Marker::FixArray(_) | Marker::Array16 | Marker::Array32 => {
            r.array_of(2, "named timezone")?;
            let offset = r.int()?;
            let name = r.str()?;
            fixed(offset, Some(name)).map(Some)
        }
        _ => {
            let offset = r.int()?;
            fixed(offset, None).map(Some)
        }
    }
}
