//! Cultures, names, addresses, phone numbering plans and identity values.
//!
//! Every identity value of a customer is *derived* from the customer's index
//! and a slot number (see [`unique`]), so a customer's state stays a few
//! bytes, values never collide between customers, and a value can be
//! rebuilt at any time. Values are stored in canonical form; [`messy_phone`]
//! and [`messy_email`] produce the untidy spellings real systems send, all of
//! which normalise back to the canonical form.

use rand::Rng;

use crate::Rng8;

/// A name: how it is displayed, and an ASCII form for email addresses and
/// handles.
#[derive(Clone, Copy)]
pub struct Name {
    pub display: &'static str,
    pub ascii: &'static str,
}

const fn n(display: &'static str, ascii: &'static str) -> Name {
    Name { display, ascii }
}

/// A country numbering plan: calling code, fixed leading digits of the
/// national number, free digits after them, and the digit groups used when
/// the number is written out.
pub struct Plan {
    pub cc: &'static str,
    /// Leading digits of the national significant number, one is chosen by
    /// the unique number (so different heads never collide).
    pub heads: &'static [&'static str],
    pub free: u32,
    /// Groups of the national significant number when written out.
    pub groups: &'static [usize],
    /// Whether `+CC (0)...` is a customary (and normalisable) spelling.
    pub trunk0: bool,
}

#[rustfmt::skip]
pub const PLANS: &[Plan] = &[
    // 0 GB London landline: +44 20 7xxx xxxx / 20 3xxx xxxx
    Plan { cc: "44", heads: &["207", "203", "208"], free: 7, groups: &[2, 4, 4], trunk0: true },
    // 1 GB mobile: +44 7xxx xxxxxx
    Plan { cc: "44", heads: &["74", "75", "77", "78", "79"], free: 8, groups: &[4, 6], trunk0: false },
    // 2 US: +1 NPA NXX XXXX
    Plan {
        cc: "1",
        heads: &["2122", "2123", "2124", "6462", "6463", "4154", "4155", "3122", "3127", "6174", "6179", "3052", "7134", "2065", "2068", "5125"],
        free: 6, groups: &[3, 3, 4], trunk0: false,
    },
    // 3 DE Berlin / Munich landline
    Plan { cc: "49", heads: &["30", "89", "40"], free: 8, groups: &[2, 4, 4], trunk0: true },
    // 4 DE mobile: +49 15x / 17x + 8 digits
    Plan { cc: "49", heads: &["151", "152", "157", "176", "170"], free: 8, groups: &[3, 4, 4], trunk0: false },
    // 5 ES landline Madrid / Barcelona: 9 digits
    Plan { cc: "34", heads: &["91", "93", "96"], free: 7, groups: &[3, 3, 3], trunk0: false },
    // 6 ES mobile: 6xx xxx xxx
    Plan { cc: "34", heads: &["6"], free: 8, groups: &[3, 3, 3], trunk0: false },
    // 7 RU Moscow / St Petersburg landline
    Plan { cc: "7", heads: &["495", "499", "343"], free: 7, groups: &[3, 3, 2, 2], trunk0: false },
    // 8 RU mobile: 9xx
    Plan { cc: "7", heads: &["916", "903", "926", "985", "921"], free: 7, groups: &[3, 3, 2, 2], trunk0: false },
    // 9 CN Beijing / Shanghai landline: 10 / 21 + 8 digits
    Plan { cc: "86", heads: &["10", "21"], free: 8, groups: &[2, 4, 4], trunk0: true },
    // 10 CN mobile: 1xx xxxx xxxx
    Plan { cc: "86", heads: &["138", "139", "186", "159", "135"], free: 8, groups: &[3, 4, 4], trunk0: false },
    // 11 FR Paris landline / mobile
    Plan { cc: "33", heads: &["1", "6", "7"], free: 8, groups: &[1, 2, 2, 2, 2], trunk0: true },
    // 12 MX Mexico City / Guadalajara / Monterrey
    Plan { cc: "52", heads: &["55", "33", "81"], free: 8, groups: &[2, 4, 4], trunk0: false },
];

/// The contact center's own published numbers, per country of the caller.
pub fn hotline(country: &str) -> &'static str {
    match country {
        "GB" => "+442079460000",
        "US" => "+12125550100",
        "DE" => "+493022670000",
        "ES" => "+34912345000",
        "RU" => "+74951234500",
        "CN" => "+861065529900",
        "FR" => "+33142685300",
        "MX" => "+525512345000",
        _ => "+442079460000",
    }
}

pub struct Culture {
    pub code: &'static str,
    pub country: &'static str,
    pub weight: u32,
    pub male: &'static [Name],
    pub female: &'static [Name],
    pub last: &'static [Name],
    /// Plans for the primary phone (mobile first), and for other phones.
    pub plans: &'static [usize],
    pub domains: &'static [&'static str],
    pub cities: &'static [(&'static str, &'static str)],
    pub streets: &'static [&'static str],
    pub currency: &'static str,
    pub pbx: &'static str,
}

#[rustfmt::skip]
const EN_GB_M: &[Name] = &[
    n("James", "james"), n("Oliver", "oliver"), n("Harry", "harry"), n("George", "george"), n("Jack", "jack"),
    n("Thomas", "thomas"), n("William", "william"), n("Charlie", "charlie"), n("Daniel", "daniel"), n("Samuel", "samuel"),
    n("Matthew", "matthew"), n("Joseph", "joseph"), n("Benjamin", "benjamin"), n("Alexander", "alexander"), n("Edward", "edward"),
    n("Henry", "henry"), n("Lewis", "lewis"), n("Ryan", "ryan"), n("Callum", "callum"), n("Owen", "owen"),
];
#[rustfmt::skip]
const EN_GB_F: &[Name] = &[
    n("Olivia", "olivia"), n("Amelia", "amelia"), n("Isla", "isla"), n("Emily", "emily"), n("Sophie", "sophie"),
    n("Jessica", "jessica"), n("Charlotte", "charlotte"), n("Grace", "grace"), n("Lucy", "lucy"), n("Hannah", "hannah"),
    n("Chloe", "chloe"), n("Ella", "ella"), n("Megan", "megan"), n("Eleanor", "eleanor"), n("Freya", "freya"),
    n("Holly", "holly"), n("Rebecca", "rebecca"), n("Victoria", "victoria"), n("Zoë", "zoe"), n("Siobhan", "siobhan"),
];
#[rustfmt::skip]
const EN_GB_L: &[Name] = &[
    n("Smith", "smith"), n("Jones", "jones"), n("Taylor", "taylor"), n("Brown", "brown"), n("Williams", "williams"),
    n("Wilson", "wilson"), n("Davies", "davies"), n("Robinson", "robinson"), n("Wright", "wright"), n("Thompson", "thompson"),
    n("Evans", "evans"), n("Walker", "walker"), n("White", "white"), n("Roberts", "roberts"), n("Green", "green"),
    n("Hall", "hall"), n("Wood", "wood"), n("Clarke", "clarke"), n("Patel", "patel"), n("Khan", "khan"),
    n("O'Brien", "obrien"), n("McDonald", "mcdonald"), n("Hughes", "hughes"), n("Ahmed", "ahmed"), n("Murphy", "murphy"),
];
#[rustfmt::skip]
const EN_US_M: &[Name] = &[
    n("Michael", "michael"), n("Christopher", "christopher"), n("Matthew", "matthew"), n("Joshua", "joshua"), n("David", "david"),
    n("Andrew", "andrew"), n("Tyler", "tyler"), n("Brandon", "brandon"), n("Justin", "justin"), n("Kevin", "kevin"),
    n("Anthony", "anthony"), n("Jason", "jason"), n("Robert", "robert"), n("John", "john"), n("Brian", "brian"),
    n("Eric", "eric"), n("Marcus", "marcus"), n("Jamal", "jamal"), n("DeShawn", "deshawn"), n("Ethan", "ethan"),
];
#[rustfmt::skip]
const EN_US_F: &[Name] = &[
    n("Jennifer", "jennifer"), n("Ashley", "ashley"), n("Jessica", "jessica"), n("Amanda", "amanda"), n("Sarah", "sarah"),
    n("Brittany", "brittany"), n("Stephanie", "stephanie"), n("Nicole", "nicole"), n("Emily", "emily"), n("Megan", "megan"),
    n("Lauren", "lauren"), n("Rachel", "rachel"), n("Samantha", "samantha"), n("Kayla", "kayla"), n("Tiffany", "tiffany"),
    n("Madison", "madison"), n("Destiny", "destiny"), n("Aaliyah", "aaliyah"), n("Courtney", "courtney"), n("Heather", "heather"),
];
#[rustfmt::skip]
const EN_US_L: &[Name] = &[
    n("Johnson", "johnson"), n("Williams", "williams"), n("Brown", "brown"), n("Jones", "jones"), n("Miller", "miller"),
    n("Davis", "davis"), n("Wilson", "wilson"), n("Anderson", "anderson"), n("Thomas", "thomas"), n("Moore", "moore"),
    n("Jackson", "jackson"), n("Martin", "martin"), n("Lee", "lee"), n("Thompson", "thompson"), n("Harris", "harris"),
    n("Clark", "clark"), n("Lewis", "lewis"), n("Robinson", "robinson"), n("Walker", "walker"), n("Nguyen", "nguyen"),
    n("Kim", "kim"), n("O'Connor", "oconnor"), n("Washington", "washington"), n("Kowalski", "kowalski"), n("Schwartz", "schwartz"),
];
#[rustfmt::skip]
const ES_M: &[Name] = &[
    n("Antonio", "antonio"), n("José", "jose"), n("Manuel", "manuel"), n("Francisco", "francisco"), n("David", "david"),
    n("Juan", "juan"), n("Javier", "javier"), n("Daniel", "daniel"), n("Carlos", "carlos"), n("Jesús", "jesus"),
    n("Alejandro", "alejandro"), n("Miguel", "miguel"), n("Rafael", "rafael"), n("Pablo", "pablo"), n("Sergio", "sergio"),
    n("Álvaro", "alvaro"), n("Iván", "ivan"), n("Raúl", "raul"), n("Rubén", "ruben"), n("Adrián", "adrian"),
];
#[rustfmt::skip]
const ES_F: &[Name] = &[
    n("María", "maria"), n("Carmen", "carmen"), n("Ana", "ana"), n("Isabel", "isabel"), n("Laura", "laura"),
    n("Lucía", "lucia"), n("Cristina", "cristina"), n("Marta", "marta"), n("Elena", "elena"), n("Sara", "sara"),
    n("Paula", "paula"), n("Raquel", "raquel"), n("Pilar", "pilar"), n("Nuria", "nuria"), n("Beatriz", "beatriz"),
    n("Silvia", "silvia"), n("Rocío", "rocio"), n("Inés", "ines"), n("Begoña", "begona"), n("Alba", "alba"),
];
#[rustfmt::skip]
const ES_L: &[Name] = &[
    n("García", "garcia"), n("Rodríguez", "rodriguez"), n("González", "gonzalez"), n("Fernández", "fernandez"), n("López", "lopez"),
    n("Martínez", "martinez"), n("Sánchez", "sanchez"), n("Pérez", "perez"), n("Gómez", "gomez"), n("Martín", "martin"),
    n("Jiménez", "jimenez"), n("Ruiz", "ruiz"), n("Hernández", "hernandez"), n("Díaz", "diaz"), n("Moreno", "moreno"),
    n("Muñoz", "munoz"), n("Álvarez", "alvarez"), n("Romero", "romero"), n("Navarro", "navarro"), n("Torres", "torres"),
    n("Domínguez", "dominguez"), n("Gil", "gil"), n("Vázquez", "vazquez"), n("Núñez", "nunez"), n("Ibáñez", "ibanez"),
];
#[rustfmt::skip]
const MX_M: &[Name] = &[
    n("José Luis", "joseluis"), n("Miguel Ángel", "miguelangel"), n("Juan Carlos", "juancarlos"), n("Jorge", "jorge"), n("Fernando", "fernando"),
    n("Ricardo", "ricardo"), n("Eduardo", "eduardo"), n("Alejandro", "alejandro"), n("Roberto", "roberto"), n("Arturo", "arturo"),
    n("Luis", "luis"), n("Héctor", "hector"), n("Emiliano", "emiliano"), n("Santiago", "santiago"), n("Diego", "diego"),
];
#[rustfmt::skip]
const MX_F: &[Name] = &[
    n("Guadalupe", "guadalupe"), n("María José", "mariajose"), n("Fernanda", "fernanda"), n("Ximena", "ximena"), n("Daniela", "daniela"),
    n("Valeria", "valeria"), n("Mariana", "mariana"), n("Andrea", "andrea"), n("Sofía", "sofia"), n("Verónica", "veronica"),
    n("Alejandra", "alejandra"), n("Gabriela", "gabriela"), n("Itzel", "itzel"), n("Araceli", "araceli"), n("Yolanda", "yolanda"),
];
#[rustfmt::skip]
const MX_L: &[Name] = &[
    n("Hernández", "hernandez"), n("García", "garcia"), n("Martínez", "martinez"), n("López", "lopez"), n("González", "gonzalez"),
    n("Pérez", "perez"), n("Rodríguez", "rodriguez"), n("Sánchez", "sanchez"), n("Ramírez", "ramirez"), n("Cruz", "cruz"),
    n("Flores", "flores"), n("Gómez", "gomez"), n("Morales", "morales"), n("Reyes", "reyes"), n("Ortiz", "ortiz"),
    n("Castillo", "castillo"), n("Chávez", "chavez"), n("Mendoza", "mendoza"), n("Vargas", "vargas"), n("Gutiérrez", "gutierrez"),
];
#[rustfmt::skip]
const DE_M: &[Name] = &[
    n("Thomas", "thomas"), n("Michael", "michael"), n("Andreas", "andreas"), n("Stefan", "stefan"), n("Christian", "christian"),
    n("Markus", "markus"), n("Jürgen", "juergen"), n("Klaus", "klaus"), n("Frank", "frank"), n("Sebastian", "sebastian"),
    n("Tobias", "tobias"), n("Lukas", "lukas"), n("Jonas", "jonas"), n("Felix", "felix"), n("Maximilian", "maximilian"),
    n("Uwe", "uwe"), n("Jörg", "joerg"), n("Dieter", "dieter"), n("Matthias", "matthias"), n("Florian", "florian"),
];
#[rustfmt::skip]
const DE_F: &[Name] = &[
    n("Sabine", "sabine"), n("Petra", "petra"), n("Claudia", "claudia"), n("Susanne", "susanne"), n("Andrea", "andrea"),
    n("Nicole", "nicole"), n("Stefanie", "stefanie"), n("Julia", "julia"), n("Anna", "anna"), n("Lena", "lena"),
    n("Katharina", "katharina"), n("Laura", "laura"), n("Jana", "jana"), n("Lea", "lea"), n("Ursula", "ursula"),
    n("Monika", "monika"), n("Brigitte", "brigitte"), n("Anja", "anja"), n("Bärbel", "baerbel"), n("Annika", "annika"),
];
#[rustfmt::skip]
const DE_L: &[Name] = &[
    n("Müller", "mueller"), n("Schmidt", "schmidt"), n("Schneider", "schneider"), n("Fischer", "fischer"), n("Weber", "weber"),
    n("Meyer", "meyer"), n("Wagner", "wagner"), n("Becker", "becker"), n("Schulz", "schulz"), n("Hoffmann", "hoffmann"),
    n("Schäfer", "schaefer"), n("Koch", "koch"), n("Bauer", "bauer"), n("Richter", "richter"), n("Klein", "klein"),
    n("Wolf", "wolf"), n("Schröder", "schroeder"), n("Neumann", "neumann"), n("Schwarz", "schwarz"), n("Zimmermann", "zimmermann"),
    n("Braun", "braun"), n("Krüger", "krueger"), n("Hartmann", "hartmann"), n("Weiß", "weiss"), n("Yılmaz", "yilmaz"),
];
#[rustfmt::skip]
const FR_M: &[Name] = &[
    n("Jean", "jean"), n("Pierre", "pierre"), n("Nicolas", "nicolas"), n("Julien", "julien"), n("Thomas", "thomas"),
    n("Mathieu", "mathieu"), n("Antoine", "antoine"), n("Maxime", "maxime"), n("Sébastien", "sebastien"), n("Guillaume", "guillaume"),
    n("François", "francois"), n("Olivier", "olivier"), n("Hugo", "hugo"), n("Théo", "theo"), n("Étienne", "etienne"),
    n("Jean-Baptiste", "jeanbaptiste"), n("Rémi", "remi"), n("Cédric", "cedric"), n("Karim", "karim"), n("Louis", "louis"),
];
#[rustfmt::skip]
const FR_F: &[Name] = &[
    n("Marie", "marie"), n("Camille", "camille"), n("Julie", "julie"), n("Sophie", "sophie"), n("Claire", "claire"),
    n("Léa", "lea"), n("Manon", "manon"), n("Chloé", "chloe"), n("Émilie", "emilie"), n("Céline", "celine"),
    n("Isabelle", "isabelle"), n("Nathalie", "nathalie"), n("Aurélie", "aurelie"), n("Margaux", "margaux"), n("Inès", "ines"),
    n("Élodie", "elodie"), n("Anaïs", "anais"), n("Hélène", "helene"), n("Marie-Claire", "marieclaire"), n("Océane", "oceane"),
];
#[rustfmt::skip]
const FR_L: &[Name] = &[
    n("Martin", "martin"), n("Bernard", "bernard"), n("Dubois", "dubois"), n("Thomas", "thomas"), n("Robert", "robert"),
    n("Richard", "richard"), n("Petit", "petit"), n("Durand", "durand"), n("Leroy", "leroy"), n("Moreau", "moreau"),
    n("Simon", "simon"), n("Laurent", "laurent"), n("Lefèvre", "lefevre"), n("Michel", "michel"), n("Bertrand", "bertrand"),
    n("Roux", "roux"), n("Vincent", "vincent"), n("Fournier", "fournier"), n("Girard", "girard"), n("Mercier", "mercier"),
    n("Dupont", "dupont"), n("Lambert", "lambert"), n("Bonnet", "bonnet"), n("Benali", "benali"), n("Ngata", "ngata"),
];
// Russian: Latin transliteration as `ascii`, Cyrillic as `display`.
#[rustfmt::skip]
const RU_M: &[Name] = &[
    n("Александр", "aleksandr"), n("Дмитрий", "dmitry"), n("Сергей", "sergey"), n("Андрей", "andrey"), n("Алексей", "alexey"),
    n("Иван", "ivan"), n("Михаил", "mikhail"), n("Николай", "nikolay"), n("Владимир", "vladimir"), n("Павел", "pavel"),
    n("Максим", "maxim"), n("Артём", "artem"), n("Юрий", "yury"), n("Олег", "oleg"), n("Игорь", "igor"),
    n("Евгений", "evgeny"), n("Константин", "konstantin"), n("Роман", "roman"),
];
#[rustfmt::skip]
const RU_F: &[Name] = &[
    n("Елена", "elena"), n("Ольга", "olga"), n("Наталья", "natalia"), n("Татьяна", "tatiana"), n("Ирина", "irina"),
    n("Светлана", "svetlana"), n("Анна", "anna"), n("Мария", "maria"), n("Екатерина", "ekaterina"), n("Юлия", "yulia"),
    n("Анастасия", "anastasia"), n("Дарья", "daria"), n("Марина", "marina"), n("Ксения", "ksenia"), n("Полина", "polina"),
    n("Виктория", "viktoria"),
];
#[rustfmt::skip]
const RU_L: &[Name] = &[
    n("Иванов", "ivanov"), n("Смирнов", "smirnov"), n("Кузнецов", "kuznetsov"), n("Попов", "popov"), n("Васильев", "vasiliev"),
    n("Петров", "petrov"), n("Соколов", "sokolov"), n("Михайлов", "mikhailov"), n("Новиков", "novikov"), n("Фёдоров", "fedorov"),
    n("Морозов", "morozov"), n("Волков", "volkov"), n("Алексеев", "alekseev"), n("Лебедев", "lebedev"), n("Семёнов", "semenov"),
    n("Егоров", "egorov"), n("Павлов", "pavlov"), n("Козлов", "kozlov"), n("Степанов", "stepanov"), n("Николаев", "nikolaev"),
    n("Орлов", "orlov"), n("Захаров", "zakharov"), n("Ковалевский", "kovalevsky"), n("Достоевский", "dostoevsky"),
];
// Chinese: pinyin as `ascii`, Hanzi as `display`.
#[rustfmt::skip]
const ZH_M: &[Name] = &[
    n("伟", "wei"), n("磊", "lei"), n("强", "qiang"), n("军", "jun"), n("洋", "yang"), n("勇", "yong"), n("杰", "jie"),
    n("涛", "tao"), n("明", "ming"), n("超", "chao"), n("刚", "gang"), n("辉", "hui"), n("浩然", "haoran"), n("宇轩", "yuxuan"),
    n("志强", "zhiqiang"), n("建华", "jianhua"),
];
#[rustfmt::skip]
const ZH_F: &[Name] = &[
    n("芳", "fang"), n("娜", "na"), n("敏", "min"), n("静", "jing"), n("艳", "yan"), n("秀英", "xiuying"), n("霞", "xia"),
    n("丽", "li"), n("欣怡", "xinyi"), n("子涵", "zihan"), n("雨萱", "yuxuan"), n("婷", "ting"), n("玉兰", "yulan"),
    n("晓燕", "xiaoyan"), n("佳琪", "jiaqi"), n("梦瑶", "mengyao"),
];
#[rustfmt::skip]
const ZH_L: &[Name] = &[
    n("王", "wang"), n("李", "li"), n("张", "zhang"), n("刘", "liu"), n("陈", "chen"), n("杨", "yang"), n("黄", "huang"),
    n("赵", "zhao"), n("吴", "wu"), n("周", "zhou"), n("徐", "xu"), n("孙", "sun"), n("马", "ma"), n("朱", "zhu"),
    n("胡", "hu"), n("郭", "guo"), n("何", "he"), n("林", "lin"), n("罗", "luo"), n("高", "gao"),
];

#[rustfmt::skip]
pub const CULTURES: &[Culture] = &[
    Culture {
        code: "en-GB", country: "GB", weight: 24, male: EN_GB_M, female: EN_GB_F, last: EN_GB_L, plans: &[1, 0],
        domains: &["btinternet.example", "gmail.example", "outlook.example", "sky.example", "example.co.uk", "yahoo.example"],
        cities: &[("London", "SW1A"), ("Manchester", "M1"), ("Birmingham", "B2"), ("Leeds", "LS1"), ("Glasgow", "G1"), ("Bristol", "BS1"), ("Cardiff", "CF10")],
        streets: &["High Street", "Station Road", "Church Lane", "Victoria Road", "Park Avenue", "Mill Lane", "Queen's Road"],
        currency: "GBP", pbx: "pbx-eu",
    },
    Culture {
        code: "en-US", country: "US", weight: 22, male: EN_US_M, female: EN_US_F, last: EN_US_L, plans: &[2, 2],
        domains: &["gmail.example", "yahoo.example", "outlook.example", "icloud.example", "aol.example", "example.com"],
        cities: &[("New York, NY", "10001"), ("San Francisco, CA", "94103"), ("Chicago, IL", "60601"), ("Boston, MA", "02108"), ("Miami, FL", "33101"), ("Houston, TX", "77002"), ("Seattle, WA", "98101"), ("Austin, TX", "78701")],
        streets: &["Main Street", "Oak Avenue", "Maple Drive", "2nd Street", "Washington Blvd", "Elm Street", "Sunset Blvd"],
        currency: "USD", pbx: "pbx-east",
    },
    Culture {
        code: "es-ES", country: "ES", weight: 13, male: ES_M, female: ES_F, last: ES_L, plans: &[6, 5],
        domains: &["gmail.example", "hotmail.example", "telefonica.example", "yahoo.example", "correo.example"],
        cities: &[("Madrid", "28013"), ("Barcelona", "08002"), ("Valencia", "46002"), ("Sevilla", "41004"), ("Bilbao", "48001"), ("Zaragoza", "50001")],
        streets: &["Calle Mayor", "Gran Vía", "Calle de Alcalá", "Avenida de la Constitución", "Calle Real", "Paseo de Gracia"],
        currency: "EUR", pbx: "pbx-eu",
    },
    Culture {
        code: "es-MX", country: "MX", weight: 5, male: MX_M, female: MX_F, last: MX_L, plans: &[12, 12],
        domains: &["gmail.example", "hotmail.example", "prodigy.example", "yahoo.example"],
        cities: &[("Ciudad de México", "06000"), ("Guadalajara", "44100"), ("Monterrey", "64000"), ("Puebla", "72000")],
        streets: &["Avenida Reforma", "Calle Madero", "Avenida Insurgentes", "Calle Juárez", "Calzada de Tlalpan"],
        currency: "MXN", pbx: "pbx-east",
    },
    Culture {
        code: "de-DE", country: "DE", weight: 12, male: DE_M, female: DE_F, last: DE_L, plans: &[4, 3],
        domains: &["web.example", "gmx.example", "t-online.example", "gmail.example", "posteo.example"],
        cities: &[("Berlin", "10115"), ("München", "80331"), ("Hamburg", "20095"), ("Köln", "50667"), ("Frankfurt am Main", "60311"), ("Düsseldorf", "40213")],
        streets: &["Hauptstraße", "Bahnhofstraße", "Schulstraße", "Gartenstraße", "Lindenallee", "Goethestraße", "Am Markt"],
        currency: "EUR", pbx: "pbx-eu",
    },
    Culture {
        code: "ru-RU", country: "RU", weight: 9, male: RU_M, female: RU_F, last: RU_L, plans: &[8, 7],
        domains: &["yandex.example", "mailru.example", "gmail.example", "rambler.example"],
        cities: &[("Москва", "101000"), ("Санкт-Петербург", "190000"), ("Казань", "420000"), ("Новосибирск", "630000"), ("Екатеринбург", "620000")],
        streets: &["ул. Тверская", "Невский пр.", "ул. Ленина", "ул. Пушкина", "Ленинский пр.", "ул. Гагарина"],
        currency: "RUB", pbx: "pbx-eu",
    },
    Culture {
        code: "zh-CN", country: "CN", weight: 9, male: ZH_M, female: ZH_F, last: ZH_L, plans: &[10, 9],
        domains: &["qq.example", "163.example", "126.example", "sina.example", "gmail.example"],
        cities: &[("北京", "100000"), ("上海", "200000"), ("广州", "510000"), ("深圳", "518000"), ("杭州", "310000"), ("成都", "610000")],
        streets: &["长安街", "南京路", "中山路", "人民路", "解放路", "建国路"],
        currency: "CNY", pbx: "pbx-apac",
    },
    Culture {
        code: "fr-FR", country: "FR", weight: 6, male: FR_M, female: FR_F, last: FR_L, plans: &[11, 11],
        domains: &["orange.example", "free.example", "gmail.example", "laposte.example", "sfr.example"],
        cities: &[("Paris", "75011"), ("Lyon", "69002"), ("Marseille", "13001"), ("Toulouse", "31000"), ("Lille", "59000"), ("Nantes", "44000")],
        streets: &["rue de la République", "avenue Victor Hugo", "rue Nationale", "boulevard Voltaire", "rue de la Paix", "place du Marché"],
        currency: "EUR", pbx: "pbx-eu",
    },
];

/// Picks a culture by weight.
pub fn pick_culture(rng: &mut Rng8) -> u8 {
    let total: u32 = CULTURES.iter().map(|c| c.weight).sum();
    let mut r = rng.random_range(0..total);
    for (i, c) in CULTURES.iter().enumerate() {
        if r < c.weight {
            return i as u8;
        }
        r -= c.weight;
    }
    0
}

/// Modulus of the unique-number space (ten million).
const SPACE: u64 = 10_000_000;
/// Multiplier of the permutation; coprime with `SPACE`.
const MULT: u64 = 7_654_321;

/// A number in `0..SPACE`, distinct for every distinct `key < SPACE`: a
/// bijection mixed with the seed, so values look random but never collide.
pub fn unique(key: u64, seed: u64) -> u64 {
    ((key % SPACE) * MULT + seed % SPACE) % SPACE
}

/// Canonical E.164 number for `key` in plan `plan`.
pub fn phone_e164(plan: usize, key: u64, seed: u64) -> String {
    let p = &PLANS[plan];
    let u = unique(key, seed ^ 0x5eed_0001);
    let heads = p.heads.len() as u64;
    let head = p.heads[(u % heads) as usize];
    // Spread the remaining value over all free digits: each value owns an
    // interval of `step` numbers and takes one of them, so numbers stay
    // distinct and do not all start with zeros.
    let rest = u / heads;
    let room = 10u64.pow(p.free);
    let values = SPACE.div_ceil(heads);
    let step = (room / values).max(1);
    let local = (rest * step + mix(u) % step) % room;
    let width = p.free as usize;
    format!("+{}{}{:0width$}", p.cc, head, local)
}

fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A number below `space` (a power of ten), distinct for every distinct
/// `key < space`: short suffixes for names, handles and addresses.
pub fn small_unique(key: u64, space: u64, seed: u64) -> u64 {
    // 7_654_321 is coprime with every power of ten.
    ((key % space) * (MULT % space) + seed % space) % space
}

/// The plan an E.164 number was built from (for formatting).
pub fn plan_of(e164: &str) -> usize {
    let digits = &e164[1..];
    PLANS
        .iter()
        .position(|p| {
            digits.starts_with(p.cc) && p.heads.iter().any(|h| digits[p.cc.len()..].starts_with(h))
        })
        .unwrap_or(0)
}

/// Writes a canonical E.164 number the way people and systems type it:
/// `+44 20 7946 0958`, `0044-20-7946-0958`, `+44 (0)20 7946 0958`,
/// `(+1) 212.555.0142`, `+1 (212) 555-0142`... All normalise back to it.
pub fn messy_phone(rng: &mut Rng8, e164: &str) -> String {
    let plan = &PLANS[plan_of(e164)];
    let nsn = &e164[1 + plan.cc.len()..];
    let mut groups = Vec::with_capacity(plan.groups.len());
    let mut at = 0;
    for (i, g) in plan.groups.iter().enumerate() {
        let end = if i + 1 == plan.groups.len() {
            nsn.len()
        } else {
            (at + g).min(nsn.len())
        };
        groups.push(&nsn[at..end]);
        at = end;
    }
    let style = rng.random_range(0..100u32);
    let sep = match rng.random_range(0..4u32) {
        0 => "-",
        1 => ".",
        _ => " ",
    };
    let cc = plan.cc;
    match style {
        0..=14 => e164.to_string(),
        15..=44 => format!("+{cc} {}", groups.join(sep)),
        45..=59 => format!("00{cc} {}", groups.join(sep)),
        60..=69 => format!("00{cc}-{}", groups.join("-")),
        70..=79 => format!("(+{cc}) {}", groups.join(sep)),
        80..=89 if plan.trunk0 => format!("+{cc} (0){}", groups.join(sep)),
        80..=99 if groups.len() >= 2 => {
            format!(
                "+{cc} ({}) {}",
                groups[0],
                groups[1..].join(if sep == " " { "-" } else { sep })
            )
        }
        _ => format!("+{cc}{}", groups.join(" ")),
    }
}

/// Canonical email for an owner key, built from the person's names. The
/// numeric suffix is distinct for every key below `space`, so two keys never
/// give the same address.
pub fn email(first: &str, last: &str, domains: &[&str], key: u64, space: u64, seed: u64) -> String {
    let h = mix(key ^ seed);
    let domain = domains[((h >> 8) % domains.len() as u64) as usize];
    let num = small_unique(key, space, seed ^ 0x5eed_0002);
    let f = first;
    let l = last;
    let fi = &first[..first
        .char_indices()
        .nth(1)
        .map(|(i, _)| i)
        .unwrap_or(first.len())];
    match h % 5 {
        0 => format!("{f}.{l}{num}@{domain}"),
        1 => format!("{fi}_{l}{num}@{domain}"),
        2 => format!("{l}-{f}{num}@{domain}"),
        3 => format!("{f}{num}.{l}@{domain}"),
        _ => format!("{f}{l}{num}@{domain}"),
    }
}

/// An email as typed: capitals here and there, stray spaces around it.
pub fn messy_email(rng: &mut Rng8, email: &str) -> String {
    let (local, domain) = email.split_once('@').unwrap_or((email, "example.com"));
    let r = rng.random_range(0..100u32);
    let out = match r {
        0..=44 => email.to_string(),
        45..=64 => format!("{}@{}", capitalize_parts(local), capitalize_parts(domain)),
        65..=74 => format!("{local}@{}", domain.to_uppercase()),
        75..=84 => email.to_uppercase(),
        _ => format!("{}@{domain}", capitalize_parts(local)),
    };
    match rng.random_range(0..10u32) {
        0 => format!(" {out}"),
        1 => format!("{out} "),
        2 => format!("  {out}\t"),
        _ => out,
    }
}

fn capitalize_parts(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut up = true;
    for c in s.chars() {
        if up {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        up = !c.is_ascii_alphanumeric();
    }
    out
}

/// Account number `ACC-` + 8 digits, unique per customer.
pub fn account(key: u64, seed: u64) -> String {
    format!("ACC-{}", 10_000_000 + unique(key, seed ^ 0x5eed_0003))
}

/// The digits of an account number, as typed into an IVR.
pub fn account_digits(account: &str) -> &str {
    account.trim_start_matches("ACC-")
}

/// A chat platform handle, unique per key below `space`.
pub fn chat_handle(first: &str, last: &str, key: u64, space: u64, seed: u64) -> String {
    let u = small_unique(key, space, seed ^ 0x5eed_0004);
    let li = last.chars().next().unwrap_or('x');
    format!("{first}{li}_{u}")
}

/// A social network handle, unique per key below `space`.
pub fn social_handle(first: &str, last: &str, key: u64, space: u64, seed: u64) -> String {
    let u = small_unique(key, space, seed ^ 0x5eed_0005);
    if mix(key).is_multiple_of(2) {
        format!("@{first}_{last}{u}")
    } else {
        format!("@{}{last}.{u}", &first[..1.min(first.len())])
    }
}

/// A loyalty-programme id (an `external` identity), unique per key.
pub fn loyalty(key: u64, seed: u64) -> String {
    format!("LOY-{:07}", unique(key, seed ^ 0x5eed_0006))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crm_events::identity::normalize;
    use crm_events::IdentityKind;
    use rand::SeedableRng;

    #[test]
    fn every_spelling_of_a_phone_normalises_to_its_e164_form() {
        let mut rng = Rng8::seed_from_u64(7);
        let mut seen = std::collections::BTreeSet::new();
        for plan in 0..PLANS.len() {
            for key in (0..80u64).map(|k| k * 124_991) {
                let e164 = phone_e164(plan, key, 42);
                assert!(seen.insert(e164.clone()), "{e164} generated twice");
                assert_eq!(normalize(IdentityKind::Phone, &e164).unwrap(), e164);
                for _ in 0..8 {
                    let messy = messy_phone(&mut rng, &e164);
                    assert_eq!(
                        normalize(IdentityKind::Phone, &messy).as_deref(),
                        Ok(e164.as_str()),
                        "plan {plan}: {messy:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn every_spelling_of_an_email_normalises_to_it() {
        let mut rng = Rng8::seed_from_u64(7);
        let mut seen = std::collections::BTreeSet::new();
        for c in CULTURES {
            for (i, key) in (0..500u64).enumerate() {
                let first = c.male[i % c.male.len()].ascii;
                let last = c.last[i % c.last.len()].ascii;
                let email = email(first, last, c.domains, key, 10_000, 42);
                assert!(seen.insert(email.clone()), "{email} generated twice");
                for _ in 0..4 {
                    let messy = messy_email(&mut rng, &email);
                    assert_eq!(
                        normalize(IdentityKind::Email, &messy).as_deref(),
                        Ok(email.as_str())
                    );
                }
            }
        }
    }

    #[test]
    fn short_suffixes_are_distinct() {
        let mut seen = std::collections::BTreeSet::new();
        for key in 0..10_000 {
            assert!(seen.insert(small_unique(key, 10_000, 99)));
        }
    }
}
